"""Command line for the random reinitialization control of a conv ticket.

    python -m lottery_ticket.cifar10_conv.runners.reinitialize \\
        --output_dir=EXP/trial1/3/reuse1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --mode=reuse --seed=1

Training settings (the model included) are read from the ticket."""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "reinitialize")


if __name__ == "__main__":
    main()
