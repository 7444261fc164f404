"""Command line for training one network, optionally with masks and presets.

    python -m lottery_ticket.mnist_fc.runners.train --output_dir=RUN_DIR \\
        --mnist_location=DIR --training_len=iterations:2000 [--masks=DIR] [--presets=DIR]"""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND = runners.train(constants.FAMILY)


def main(argv=None) -> None:
    """Runs the command line (default sys.argv); --help lists every flag."""
    COMMAND.run(argv)


if __name__ == "__main__":
    main()
