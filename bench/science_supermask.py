"""Mask criteria and supermasks on Fashion-MNIST with LeNet-300-100: short, real data.

    python bench/science_supermask.py [--iterations=800] [--levels=3] [--rate=0.6] \
        [--criteria=large_final,small_final,...] [--root=DIR] [--data=DIR/fashion-mnist]

One lottery trial per mask criterion of Zhou et al. (--prune_scores=NAME;
foundations.pruning.criteria, and random), --iterations per level, hidden
layers pruned by --rate per level (the output layer by half of it), then the
supermask evaluation of every level (experiments.supermask): test accuracy of
the masked network at its initial weights without training, and with the
signed constant initialization. Prints one JSON object (per criterion and
level: weights remaining, both accuracies, and the trained ticket's final test
accuracy); the figure goes to {root}/supermask.png. The trials are
{root}/trial{i}, one per criterion (in --criteria order), so
``python -m lottery_ticket.analysis.report --experiment_root={root}`` reads them as one
experiment. Rerunning with the same --root reads everything back.
"""

import argparse
import json
import os
import tempfile
import time

from lottery_ticket.analysis import figures, science
from lottery_ticket.experiments import lottery, supermask
from lottery_ticket.foundations import paths, save_restore
from lottery_ticket.foundations.pruning import criteria
from lottery_ticket.mnist_fc import constants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(
        os.environ.get("LOTTERY_TICKET_TEST_DATA", "data"), "fashion-mnist"))
    parser.add_argument("--root", default="")
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.6)
    parser.add_argument("--criteria", default=",".join(criteria.CRITERIA))
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="science_supermask_")
    started = time.time()
    results = []
    for index, criterion in enumerate(args.criteria.split(",")):
        config = constants.DEFAULT.replace(
            dataset="fashion_mnist", data_location=args.data,
            training_len=("iterations", args.iterations), validation_size=0,
            test_interval=args.iterations, levels=args.levels, prune_scores=criterion,
            prune_percents={"layer0": args.rate, "layer1": args.rate,
                            "layer2": args.rate / 2})
        # One experiment tree, a trial per criterion: the report reads it as one
        # (series by prune_scores) and draws supermask.png from the trials' records.
        trial_dir = os.path.join(root, f"trial{index + 1}")
        lottery.run_trial(trial_dir, config, seed=1, progress=False)
        record = supermask.evaluate_trial(trial_dir)
        for entry in record["levels"]:
            metrics = save_restore.read_json(paths.metrics(paths.run(trial_dir,
                                                                     entry["level"])))
            results.append({"criterion": criterion, "level": entry["level"],
                            "remaining": round(entry["remaining"], 4),
                            "supermask_init": round(entry["init"]["accuracy"], 4),
                            "supermask_signed_constant":
                                round(entry["signed_constant"]["accuracy"], 4),
                            "trained": round(metrics["test"]["accuracy"][-1], 4)})
    rows = science.read_supermasks(root)
    figures.supermask_figure(rows, path=os.path.join(root, "supermask.png"),
                             title="LeNet-300-100 on Fashion-MNIST: supermasks")
    print(json.dumps({"root": root, "iterations": args.iterations, "rate": args.rate,
                      "seconds": round(time.time() - started, 1), "results": results},
                     indent=1))


if __name__ == "__main__":
    main()
