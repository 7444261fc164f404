"""Prints one lottery_experiment flag line per trial.

    python -m lottery_ticket.mnist_fc.argfiles.lottery_experiment_argfile \\
        --trials=5 --levels=30 --experiment_root=DIR > lottery.args

Trial N writes to {experiment_root}/trial{N} and uses seed N.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants

main = argfiles.entry_point(constants.FAMILY, "lottery_experiment_argfile")


if __name__ == "__main__":
    main()
