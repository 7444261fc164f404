"""Prints one rearrange flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.rearrange_argfile \\
        --trials=5 --last_level=30 --experiment_root=DIR > rearrange.args
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants

main = argfiles.entry_point(constants.FAMILY, "rearrange_argfile")


if __name__ == "__main__":
    main()
