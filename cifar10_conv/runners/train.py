"""Command line for training one conv network, optionally with masks and presets.

    python -m lottery_ticket.cifar10_conv.runners.train --output_dir=RUN_DIR \\
        --data_location=DIR --model=conv2 [--masks=DIR] [--presets=DIR] [--dropout=0.5]"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "train")


if __name__ == "__main__":
    main()
