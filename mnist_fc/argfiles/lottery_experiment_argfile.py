"""Prints one lottery_experiment flag line per trial.

    python -m lottery_ticket.mnist_fc.argfiles.lottery_experiment_argfile \\
        --trials=5 --levels=30 --experiment_root=DIR > lottery.args

Trial N writes to {experiment_root}/trial{N} and uses seed N.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants


def main(argv=None) -> None:
    """Defines the flags, parses argv (default sys.argv) and prints the lines."""
    argfiles.lottery_main(constants.FAMILY, argv)


if __name__ == "__main__":
    main()
