"""Command line for the random reinitialization control.

    python -m lottery_ticket.mnist_fc.runners.reinitialize \\
        --output_dir=EXP/trial1/3/reuse1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --mode=reuse --seed=1

Training settings are read from the ticket (the run holding --masks); a flag
that differs from the ticket is refused unless --override names it."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "reinitialize")


if __name__ == "__main__":
    main()
