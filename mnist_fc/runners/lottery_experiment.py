"""Command line for one trial of the lottery ticket experiment.

    python -m lottery_ticket.mnist_fc.runners.lottery_experiment \\
        --output_dir=DIR --mnist_location=DIR \\
        --training_len="('iterations', 2000)" --iterations=3

Rerunning the same command resumes after the last completed level.
"""

from typing import Dict, Optional, Sequence

from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc.runners import common


def main(output_dir: Optional[str] = None, mnist_location: str = constants.MNIST_LOCATION,
         training_len: Sequence = constants.TRAINING_LEN,
         iterations: int = constants.NUM_LEVELS, seed: int = 0,
         learning_rate: float = constants.LEARNING_RATE,
         optimizer: str = constants.OPTIMIZER, momentum: float = 0.9,
         batch_size: int = constants.BATCH_SIZE,
         validation_size: int = constants.VALIDATION_SIZE,
         test_interval: int = constants.TEST_INTERVAL,
         validate_interval: int = constants.VALIDATE_INTERVAL,
         prune_percents: Optional[Dict[str, float]] = None,
         experiment_name: str = constants.EXPERIMENT_NAME,
         presets: Optional[str] = None, threads: Optional[int] = None) -> None:
    """Runs or resumes one lottery ticket trial.

    Args:
      output_dir: the trial directory; default {EXPERIMENT_PATH}/trial{seed}.
      mnist_location: directory of the IDX files.
      training_len: ('iterations', N) or ('epochs', N) per level.
      iterations: pruning levels after the dense level 0.
      seed: seeds the initialization and the batch order.
      learning_rate, optimizer ('sgd', 'momentum', 'adam'), momentum,
        batch_size, validation_size, test_interval, validate_interval: training.
      prune_percents: e.g. "{'layer0': 0.2, 'layer1': 0.2, 'layer2': 0.1}".
      experiment_name: name of the run directories.
      presets: directory of level-0 initial weights.
      threads: TensorFlow CPU threads (default: TensorFlow's choice).
    """
    common.configure(threads)
    from lottery_ticket.mnist_fc import lottery_experiment  # After configure().
    config = common.training_config(training_len, learning_rate, optimizer, momentum,
                                    batch_size, validation_size, test_interval,
                                    validate_interval)
    if output_dir is None:
        output_dir = constants.trial(constants.EXPERIMENT_PATH, seed)
    results = lottery_experiment.run_experiment(
        output_dir, mnist_location, config, int(iterations), prune_percents,
        experiment_name, int(seed), presets)
    print(f"trial directory: {output_dir}")
    for level, result in results.items():
        kept = sum(float(m.sum()) for m in result.masks.values())
        total = sum(m.size for m in result.masks.values())
        print(f"level {level}: {100 * kept / total:6.2f}% of weights remain")


if __name__ == "__main__":
    common.run_cli(main)
