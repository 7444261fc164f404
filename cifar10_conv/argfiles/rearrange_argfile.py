"""Prints one rearrange flag line per control run.

    python -m lottery_ticket.cifar10_conv.argfiles.rearrange_argfile \\
        --trials=5 --last_level=20 --experiment_root=DIR --data_location=DIR
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_conv import constants

main = argfiles.entry_point(constants.FAMILY, "rearrange_argfile")


if __name__ == "__main__":
    main()
