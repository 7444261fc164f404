"""Prints one rearrange flag line per control run.

    python -m lottery_ticket.cifar10_conv.argfiles.rearrange_argfile \\
        --trials=5 --last_level=20 --experiment_root=DIR --data_location=DIR
"""

from lottery_ticket.cifar10_conv import constants
from lottery_ticket.cli import argfiles


def main(argv=None) -> None:
    """Defines the flags, parses argv (default sys.argv) and prints the lines."""
    argfiles.control_main(constants.FAMILY, "rearrange", "level", argv)


if __name__ == "__main__":
    main()
