"""Command line for one prune-at-initialization run of a trial.

    python -m lottery_ticket.cifar10_conv.runners.prune_at_init --prune_scores=synflow \\
        --output_dir=results/trial1/3/prune_at_init_synflow --seed=1 --training_len=iterations:2000

Prunes the trial's freshly initialized network (seed 1) with the score to the
weights iterative pruning keeps at level 3 and trains it once; --ablation=shuffle,
reinit or invert runs Frankle et al. 2021's ablations (the directory's name ends
in _shuffle, _reinit, _invert). Rerunning reads a finished run back.
"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "prune_at_init")


if __name__ == "__main__":
    main()
