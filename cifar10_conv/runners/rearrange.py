"""Command line for the random rearrangement control of a conv ticket.

    python -m lottery_ticket.cifar10_conv.runners.rearrange \\
        --output_dir=EXP/trial1/3/rearrange1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --seed=1"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "rearrange")


if __name__ == "__main__":
    main()
