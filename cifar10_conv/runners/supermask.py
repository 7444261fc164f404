"""Supermask evaluation of a lottery trial's levels on Conv-2/4/6 (Zhou et al. 2019).

    python -m lottery_ticket.cifar10_conv.runners.supermask --trial_dir=DIR --data_location=DIR

Writes {trial}/supermask.json; see lottery_ticket.experiments.supermask."""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "supermask")


if __name__ == "__main__":
    main()
