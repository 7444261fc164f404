"""The cifar10_resnet family's oneshot runner (ResNet-20, VGG-16): see lottery_ticket.cli.

    python -m lottery_ticket.cifar10_resnet.runners.oneshot --help
"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_resnet import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "oneshot")


if __name__ == "__main__":
    main()
