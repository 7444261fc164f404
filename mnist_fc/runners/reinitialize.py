"""Command line for the random reinitialization control.

    python -m lottery_ticket.mnist_fc.runners.reinitialize \\
        --output_dir=EXP/trial1/3/reinit1 --masks=EXP/trial1/3/lottery/masks \\
        --presets=EXP/trial1/3/lottery/initial --mode=reuse --seed=1 \\
        --mnist_location=DIR [--training_len=iterations:2000 ...]

Training flags (--training_len, --learning_rate, ...) are as in runners.train.
"""

from typing import Optional

from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc.runners import common


def main(output_dir: str, masks: str, presets: Optional[str] = None, mode: str = "reinit",
         seed: int = 0, train_order_seed: Optional[int] = None,
         mnist_location: str = constants.MNIST_LOCATION, threads: Optional[int] = None,
         **training_flags) -> None:
    """Trains the ticket's mask from a random initialization (reinit, reuse, reuse_sign)."""
    from lottery_ticket.mnist_fc import reinitialize
    common.run_control(reinitialize.reinitialize, output_dir, threads, training_flags,
                       masks=masks, presets=presets, mode=mode, seed=int(seed),
                       mnist_location=mnist_location, train_order_seed=train_order_seed)


if __name__ == "__main__":
    common.run_cli(main)
