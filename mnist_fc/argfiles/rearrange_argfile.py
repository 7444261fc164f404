"""Prints one rearrange flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.rearrange_argfile \\
        --trials=5 --last_level=30 --experiment_root=DIR > rearrange.args
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants


def main(argv=None) -> None:
    """Defines the flags, parses argv (default sys.argv) and prints the lines."""
    argfiles.control_main(constants.FAMILY, "rearrange", "level", argv)


if __name__ == "__main__":
    main()
