"""Instability analysis (linear mode connectivity) of a finished trial's levels on Conv-2/4/6.

    python -m lottery_ticket.cifar10_conv.runners.instability --trial_dir=DIR --data_location=DIR \
        --levels=0,3 --instability_iterations=0,100,500 --interpolation_points=30

Rerunning reads finished analyses back; see lottery_ticket.experiments.instability."""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "instability")


if __name__ == "__main__":
    main()
