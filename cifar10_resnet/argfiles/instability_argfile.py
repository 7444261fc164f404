"""The cifar10_resnet family's instability_argfile argfile (ResNet-20, VGG-16): see lottery_ticket.cli.

    python -m lottery_ticket.cifar10_resnet.argfiles.instability_argfile --help
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_resnet import constants

main = argfiles.entry_point(constants.FAMILY, "instability_argfile")


if __name__ == "__main__":
    main()
