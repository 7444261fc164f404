"""The cifar10_resnet family's lottery_experiment_argfile argfile (ResNet-20, VGG-16): see lottery_ticket.cli.

    python -m lottery_ticket.cifar10_resnet.argfiles.lottery_experiment_argfile --help
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_resnet import constants

main = argfiles.entry_point(constants.FAMILY, "lottery_experiment_argfile")


def split_model(argv):
    """(the --model named in argv or conv2, the other arguments): see argfiles.split_model."""
    return argfiles.split_model(constants.FAMILY, argv)


if __name__ == "__main__":
    main()
