"""Prints one oneshot flag line per trial and level.

    python -m lottery_ticket.mnist_fc.argfiles.oneshot_argfile \\
        --trials=5 --oneshot_levels=3,7,12 --experiment_root=DIR > oneshot.args

Trial N, level k writes {experiment_root}/trial{N}/{k}/oneshot with seed N,
pruned from the trial's level 0 ({experiment_root}/trial{N}/0/lottery).
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.mnist_fc import constants

main = argfiles.entry_point(constants.FAMILY, "oneshot_argfile")


if __name__ == "__main__":
    main()
