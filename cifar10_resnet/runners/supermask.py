"""The cifar10_resnet family's supermask runner (ResNet-20, VGG-16): see lottery_ticket.cli.

    python -m lottery_ticket.cifar10_resnet.runners.supermask --help
"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_resnet import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "supermask")


if __name__ == "__main__":
    main()
