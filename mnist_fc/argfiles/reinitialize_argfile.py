"""Prints one reinitialize flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.reinitialize_argfile --mode=reuse \\
        --trials=5 --last_level=30 --experiment_root=DIR > reuse.args

Runs land in {root}/trial{T}/{L}/{mode}{R}, beside the lottery run they control.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.foundations import controls
from lottery_ticket.mnist_fc import constants


def main(argv=None) -> None:
    """Defines the flags, parses argv (default sys.argv) and prints the lines."""
    argfiles.control_main(constants.FAMILY, None, "level", argv,
                          modes=controls.REINITIALIZE_MODES)


if __name__ == "__main__":
    main()
