"""Prints one instability flag line per trial, level and k (one analysis a line).

    python -m lottery_ticket.cifar10_conv.argfiles.instability_argfile --trials=2 \\
        --levels=0,5 --instability_iterations=0,100,500

Trial N, level L, k writes {experiment_root}/trial{N}/{L}/instability_k{k}; run the
lines with argfile_runner --runner=instability --argfile=instability_argfile.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_conv import constants

main = argfiles.entry_point(constants.FAMILY, "instability_argfile")


if __name__ == "__main__":
    main()
