"""Command line for training one network, optionally with masks and presets.

    python -m lottery_ticket.mnist_fc.runners.train --output_dir=RUN_DIR \\
        --mnist_location=DIR [--masks=DIR] [--presets=DIR]
"""

from typing import Optional, Sequence

from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc.runners import common


def main(output_dir: str, mnist_location: str = constants.MNIST_LOCATION,
         training_len: Sequence = constants.TRAINING_LEN, seed: int = 0,
         masks: Optional[str] = None, presets: Optional[str] = None,
         learning_rate: float = constants.LEARNING_RATE,
         optimizer: str = constants.OPTIMIZER, momentum: float = 0.9,
         batch_size: int = constants.BATCH_SIZE,
         validation_size: int = constants.VALIDATION_SIZE,
         test_interval: int = constants.TEST_INTERVAL,
         validate_interval: int = constants.VALIDATE_INTERVAL,
         threads: Optional[int] = None) -> None:
    """Trains one network into the run directory `output_dir`.

    Args:
      output_dir: the run directory (never overwritten once complete).
      masks, presets: directories of {layer}.npy files (e.g. a run's masks/
        and initial/).
      Other flags as in runners.lottery_experiment.
    """
    common.configure(threads)
    from lottery_ticket.mnist_fc import train  # After configure().
    config = common.training_config(training_len, learning_rate, optimizer, momentum,
                                    batch_size, validation_size, test_interval,
                                    validate_interval)
    train.train(output_dir, mnist_location, config, masks=masks, presets=presets,
                seed=int(seed))
    print(f"run directory: {output_dir}")


if __name__ == "__main__":
    common.run_cli(main)
