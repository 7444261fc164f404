"""Prints one reinitialize flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.reinitialize_argfile --mode=reuse \\
        --trials=5 --last_level=30 --experiment_root=DIR > reuse.args

Runs land in {root}/trial{T}/{L}/{mode}{R}, beside the lottery run they control.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants

main = argfiles.entry_point(constants.FAMILY, "reinitialize_argfile")


if __name__ == "__main__":
    main()
