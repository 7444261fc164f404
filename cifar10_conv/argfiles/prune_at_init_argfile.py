"""Prints one prune-at-init flag line per trial, level, score and ablation.

    python -m lottery_ticket.cifar10_conv.argfiles.prune_at_init_argfile --trials=2 \\
        --levels_at=5,10,15 --scores=snip,synflow,random --ablations=none,shuffle

Trial N, level k, score S writes {experiment_root}/trial{N}/{k}/prune_at_init_S
(with _{ablation} for an ablation), seed N.
"""

from lottery_ticket.cli import argfiles
from lottery_ticket.cifar10_conv import constants

main = argfiles.entry_point(constants.FAMILY, "prune_at_init_argfile")


if __name__ == "__main__":
    main()
