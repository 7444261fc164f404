#!/bin/sh
# Makes docs/figures/quickstart_accuracy.png: two short LeNet-300-100 trials on
# Fashion-MNIST (5 pruning levels of 300 iterations, half of each hidden layer's
# weights pruned per level), a random-reinitialization control at every level, and
# the report's early-stopping accuracy figure. About 4 minutes on 2 shared CPU cores.
# Usage: sh docs/figures/make_quickstart_figure.sh DATA_DIR WORK_DIR
set -e
data=$1
work=$2
for trial in 1 2; do
    python -m lottery_ticket.mnist_fc.runners.lottery_experiment \
        --output_dir="$work/lottery/trial$trial" --mnist_location="$data" --seed=$trial \
        --training_len=iterations:300 --levels=5 \
        --prune_percents="{'layer0': 0.5, 'layer1': 0.5, 'layer2': 0.25}"
done
python -m lottery_ticket.mnist_fc.argfiles.reinitialize_argfile --mode=reinit --trials=2 \
    --runs_per_level=1 --last_level=5 --experiment_root="$work/lottery" \
    --mnist_location="$data" > "$work/reinit.args"
python -m lottery_ticket.mnist_fc.runners.argfile_runner --runner=reinitialize \
    --argfile="$work/reinit.args" --workers=1
python -m lottery_ticket.analysis.report --experiment_root="$work/lottery" \
    --output_dir="$work/figures" --title="LeNet-300-100, Fashion-MNIST, 300 iterations"
cp "$work/figures/early_stop_accuracy.png" "$(dirname "$0")/quickstart_accuracy.png"
