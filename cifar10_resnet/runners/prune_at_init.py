"""The cifar10_resnet family's prune_at_init runner (ResNet-20, VGG-16): see lottery_ticket.cli.

    python -m lottery_ticket.cifar10_resnet.runners.prune_at_init --help
"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_resnet import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "prune_at_init")


if __name__ == "__main__":
    main()
