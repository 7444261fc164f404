"""Prints one oneshot flag line per trial and level.

    python -m lottery_ticket.cifar10_conv.argfiles.oneshot_argfile --model=conv4 \\
        --trials=5 --oneshot_levels=3,7,12 --experiment_root=DIR --data_location=DIR

--model (default conv2) picks the model's defaults and adds --model to every
line, as the lottery argfile does. Trial N, level k writes
{experiment_root}/trial{N}/{k}/oneshot with seed N.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_conv import constants

main = argfiles.entry_point(constants.FAMILY, "oneshot_argfile")


if __name__ == "__main__":
    main()
