"""Command line for the random pruning control.

    python -m lottery_ticket.mnist_fc.runners.random_prune \\
        --output_dir=EXP/trial1/3/random_prune1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/0/lottery/initial --seed=1 --mnist_location=DIR

`--presets` is the dense level-0 initialization. Training flags as in runners.train.
"""

from typing import Optional

from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc.runners import common


def main(output_dir: str, masks: str, presets: str, seed: int = 0,
         train_order_seed: Optional[int] = None,
         mnist_location: str = constants.MNIST_LOCATION, threads: Optional[int] = None,
         **training_flags) -> None:
    """Trains random masks of the ticket's size from the original initialization."""
    from lottery_ticket.mnist_fc import random_prune
    common.run_control(random_prune.random_prune, output_dir, threads, training_flags,
                       masks=masks, presets=presets, seed=int(seed),
                       mnist_location=mnist_location, train_order_seed=train_order_seed)


if __name__ == "__main__":
    common.run_cli(main)
