"""Command line for the random rearrangement control.

    python -m lottery_ticket.mnist_fc.runners.rearrange \\
        --output_dir=EXP/trial1/3/rearrange1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --seed=1

Training settings are read from the ticket, as in runners.reinitialize."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND = runners.control(constants.FAMILY, "rearrange")


def main(argv=None) -> None:
    """Runs the command line (default sys.argv); --help lists every flag."""
    COMMAND.run(argv)


if __name__ == "__main__":
    main()
