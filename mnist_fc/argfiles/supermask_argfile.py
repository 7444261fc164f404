"""Prints one supermask flag line per trial (every finished level of it is evaluated).

    python -m lottery_ticket.mnist_fc.argfiles.supermask_argfile --trials=5

Trial N writes {experiment_root}/trial{N}/supermask.json; run the lines with
argfile_runner --runner=supermask --argfile=supermask_argfile.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants

main = argfiles.entry_point(constants.FAMILY, "supermask_argfile")


if __name__ == "__main__":
    main()
