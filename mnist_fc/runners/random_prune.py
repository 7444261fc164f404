"""Command line for the random pruning control.

    python -m lottery_ticket.mnist_fc.runners.random_prune \\
        --output_dir=EXP/trial1/3/random_prune1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/0/lottery/initial --seed=1

`--presets` is the dense level-0 initialization. Training settings are read
from the ticket, as in runners.reinitialize."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "random_prune")


if __name__ == "__main__":
    main()
