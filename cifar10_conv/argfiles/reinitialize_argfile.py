"""Prints one reinitialize flag line per control run (--mode=reinit|reuse|reuse_sign).

    python -m lottery_ticket.cifar10_conv.argfiles.reinitialize_argfile --mode=reuse \\
        --trials=5 --last_level=20 --experiment_root=DIR --data_location=DIR

Controls read the ticket's settings (the model included) from its done.json.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_conv import constants

main = argfiles.entry_point(constants.FAMILY, "reinitialize_argfile")


if __name__ == "__main__":
    main()
