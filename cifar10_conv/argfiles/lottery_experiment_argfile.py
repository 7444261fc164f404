"""Prints one lottery_experiment flag line per trial.

    python -m lottery_ticket.cifar10_conv.argfiles.lottery_experiment_argfile \\
        --model=conv4 --trials=5 --experiment_root=DIR --data_location=DIR > conv4.args

--model (default conv2) picks the model's defaults (its --training_len, written
on every line) and adds --model to every line. Trial N writes to
{experiment_root}/trial{N} and uses seed N.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_conv import constants

main = argfiles.entry_point(constants.FAMILY, "lottery_experiment_argfile")


def split_model(argv):
    """(the --model named in argv or conv2, the other arguments): see argfiles.split_model."""
    return argfiles.split_model(constants.FAMILY, argv)


if __name__ == "__main__":
    main()
