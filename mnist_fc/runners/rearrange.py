"""Command line for the random rearrangement control.

    python -m lottery_ticket.mnist_fc.runners.rearrange \\
        --output_dir=EXP/trial1/3/rearrange1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --seed=1

Training settings are read from the ticket, as in runners.reinitialize."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "rearrange")


if __name__ == "__main__":
    main()
