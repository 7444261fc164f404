"""The cifar10_resnet family's supermask_argfile argfile (ResNet-20, VGG-16): see lottery_ticket.cli.

    python -m lottery_ticket.cifar10_resnet.argfiles.supermask_argfile --help
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_resnet import constants

main = argfiles.entry_point(constants.FAMILY, "supermask_argfile")


if __name__ == "__main__":
    main()
