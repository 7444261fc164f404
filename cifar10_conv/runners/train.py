"""Command line for training one conv network, optionally with masks and presets.

    python -m lottery_ticket.cifar10_conv.runners.train --output_dir=RUN_DIR \\
        --data_location=DIR --model=conv2 [--masks=DIR] [--presets=DIR] [--dropout=0.5]"""

from lottery_ticket.cifar10_conv import constants
from lottery_ticket.cli import runners

COMMAND = runners.train(constants.FAMILY)


def main(argv=None) -> None:
    """Runs the command line (default sys.argv); --help lists every flag."""
    COMMAND.run(argv)


if __name__ == "__main__":
    main()
