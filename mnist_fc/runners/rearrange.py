"""Command line for the random rearrangement control.

    python -m lottery_ticket.mnist_fc.runners.rearrange \\
        --output_dir=EXP/trial1/3/rearrange1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --seed=1 --mnist_location=DIR

Training flags (--training_len, --learning_rate, ...) are as in runners.train.
"""

from typing import Optional

from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc.runners import common


def main(output_dir: str, masks: str, presets: str, seed: int = 0,
         train_order_seed: Optional[int] = None,
         mnist_location: str = constants.MNIST_LOCATION, threads: Optional[int] = None,
         **training_flags) -> None:
    """Trains the ticket's initial values moved to random positions in each layer."""
    from lottery_ticket.mnist_fc import rearrange
    common.run_control(rearrange.rearrange, output_dir, threads, training_flags,
                       masks=masks, presets=presets, seed=int(seed),
                       mnist_location=mnist_location, train_order_seed=train_order_seed)


if __name__ == "__main__":
    common.run_cli(main)
