"""Command line for training one network, optionally with masks and presets.

    python -m lottery_ticket.mnist_fc.runners.train --output_dir=RUN_DIR \\
        --mnist_location=DIR --training_len=iterations:2000 [--masks=DIR] [--presets=DIR]"""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "train")


if __name__ == "__main__":
    main()
