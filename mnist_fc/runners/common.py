"""Set-up shared by the command-line runners."""

import inspect
import logging
import os
from typing import Any, Callable, Dict, Optional, Sequence

from lottery_ticket.foundations import cli
from lottery_ticket.mnist_fc import constants


def configure(threads: Optional[int] = None) -> None:
    """Progress lines on stderr, TensorFlow's CPU thread count, deterministic GPU ops.

    Args:
      threads: threads for TensorFlow's CPU kernels; None keeps its default.
        One thread per process is fastest for LeNet-300-100 (small matrices),
        and is what the batch runner gives each worker.
    """
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    # On a GPU some reductions are nondeterministic unless told otherwise. On a
    # CPU, TensorFlow's default (oneDNN) kernels already give the same bits for
    # the same seeds at any thread count, and switching kernels would make runner
    # results differ from a notebook's, so CPUs are left as they are.
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()


def parse_training_len(training_len) -> tuple:
    """('iterations', N) from a pair or from the text 'iterations:N' / 'epochs:N'."""
    if isinstance(training_len, str):
        unit, _, amount = training_len.replace(",", ":").partition(":")
        unit, amount = unit.strip(" ('\""), amount.strip(" )'\"")
        if unit in ("iterations", "epochs") and amount.isdigit():
            return unit, int(amount)
        raise ValueError(
            f"--training_len={training_len!r} is not a training length: write "
            "--training_len=iterations:2000 or --training_len=epochs:10.")
    if len(training_len) != 2:
        raise ValueError(f"training_len {training_len!r} must be (unit, N).")
    return str(training_len[0]), int(training_len[1])


def training_config(training_len: Sequence = constants.TRAINING_LEN,
                    learning_rate: float = constants.LEARNING_RATE,
                    optimizer: str = constants.OPTIMIZER, momentum: float = 0.9,
                    batch_size: int = constants.BATCH_SIZE,
                    validation_size: int = constants.VALIDATION_SIZE,
                    test_interval: int = constants.TEST_INTERVAL,
                    validate_interval: int = constants.VALIDATE_INTERVAL
                    ) -> constants.TrainingConfig:
    """A TrainingConfig from runner flags, with a clear error for a bad training_len."""
    return constants.TrainingConfig(
        training_len=parse_training_len(training_len), learning_rate=float(learning_rate),
        optimizer=optimizer, momentum=float(momentum), batch_size=int(batch_size),
        validation_size=int(validation_size), test_interval=int(test_interval),
        validate_interval=int(validate_interval))


run_cli = cli.run_cli


def config_from_flags(training_flags: Dict[str, Any]) -> constants.TrainingConfig:
    """A TrainingConfig from the runner's remaining --flags, naming unknown ones."""
    known = set(inspect.signature(training_config).parameters)
    unknown = sorted(set(training_flags) - known)
    if unknown:
        raise ValueError(f"unknown flag(s) {', '.join('--' + u for u in unknown)}; "
                         f"training flags are {', '.join('--' + k for k in sorted(known))}.")
    return training_config(**training_flags)


def run_control(control: Callable, output_dir: str, threads: Optional[int],
                training_flags: Dict[str, Any], **arguments) -> None:
    """Shared body of the control runners: configure, train, say where."""
    configure(threads)
    control(output_dir, config=config_from_flags(training_flags), **arguments)
    print(f"run directory: {output_dir}")
