"""Instability analysis (linear mode connectivity) of a finished trial's levels on LeNet-300-100.

    python -m lottery_ticket.mnist_fc.runners.instability --trial_dir=DIR --mnist_location=DIR \
        --levels=0,3 --instability_iterations=0,100,500 --interpolation_points=30

Rerunning reads finished analyses back; see lottery_ticket.experiments.instability."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "instability")


if __name__ == "__main__":
    main()
