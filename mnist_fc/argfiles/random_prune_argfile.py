"""Prints one random_prune flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.random_prune_argfile \\
        --trials=5 --last_level=30 --experiment_root=DIR > random_prune.args

Each line reads the ticket's masks at its level (for the counts) and the
trial's level-0 initial weights.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants

main = argfiles.entry_point(constants.FAMILY, "random_prune_argfile")


if __name__ == "__main__":
    main()
