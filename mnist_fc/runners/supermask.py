"""Supermask evaluation of a lottery trial's levels on LeNet-300-100 (Zhou et al. 2019).

    python -m lottery_ticket.mnist_fc.runners.supermask --trial_dir=DIR --mnist_location=DIR

Writes {trial}/supermask.json; see lottery_ticket.experiments.supermask."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "supermask")


if __name__ == "__main__":
    main()
