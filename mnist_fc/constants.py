"""Hyperparameters of LeNet-300-100 on MNIST, as in the original codebase.

Every value is a default: runners and functions take each one as an argument.
"""

import dataclasses
import functools
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from lottery_ticket.foundations import paths
from lottery_ticket.mnist_fc import locations

# 300-100-10 with ReLU, Glorot-normal kernels, zero biases.
LAYERS: List[Tuple[int, Optional[str]]] = [(300, "relu"), (100, "relu"), (10, None)]
HYPERPARAMETERS: Dict[str, Any] = {"layers": LAYERS}
KERNEL_INITIALIZER = "glorot_normal"

OPTIMIZER = "sgd"
LEARNING_RATE = 0.1
TRAINING_LEN = ("iterations", 50000)
BATCH_SIZE = 60
# The paper's early-stopping criterion needs a validation split: 5,000
# examples held out from the end of the training set.
VALIDATION_SIZE = 5000
TEST_INTERVAL = 100
VALIDATE_INTERVAL = 100

# Fraction of the surviving weights pruned per level; the output layer is
# pruned at half the rate so that it stays connected.
PRUNE_PERCENTS: Dict[str, float] = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}
NUM_LEVELS = 30  # pruning levels after the dense level 0

EXPERIMENT_NAME = "lottery"
MNIST_LOCATION = locations.MNIST_LOCATION
EXPERIMENT_PATH = locations.EXPERIMENT_PATH


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How one network is trained; written beside every run (done.json)."""
    layers: Tuple[Tuple[int, Optional[str]], ...] = tuple(LAYERS)
    optimizer: str = OPTIMIZER
    learning_rate: float = LEARNING_RATE
    momentum: float = 0.9
    training_len: Tuple[str, int] = TRAINING_LEN
    batch_size: int = BATCH_SIZE
    validation_size: int = VALIDATION_SIZE
    test_interval: int = TEST_INTERVAL
    validate_interval: int = VALIDATE_INTERVAL

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is not one of "
                             f"{sorted(OPTIMIZERS)}.")
        unit, amount = self.training_len
        object.__setattr__(self, "training_len", (str(unit), int(amount)))
        object.__setattr__(self, "layers", tuple((int(u), a) for u, a in self.layers))

    @property
    def hyperparameters(self) -> Dict[str, Any]:
        """The ModelFc hyperparameters."""
        return {"layers": list(self.layers), "kernel_initializer": KERNEL_INITIALIZER}

    def optimizer_fn(self) -> Callable[[], Any]:
        """A function that makes a fresh optimizer."""
        return OPTIMIZERS[self.optimizer](self)

    def to_json(self) -> Dict[str, Any]:
        """The configuration as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["layers"] = [list(layer) for layer in self.layers]
        values["training_len"] = list(self.training_len)
        return values


def _sgd(config: TrainingConfig):
    import tensorflow as tf  # Imported here so that constants load fast.
    return functools.partial(tf.keras.optimizers.SGD, learning_rate=config.learning_rate)


def _momentum(config: TrainingConfig):
    import tensorflow as tf
    return functools.partial(tf.keras.optimizers.SGD, learning_rate=config.learning_rate,
                             momentum=config.momentum)


def _adam(config: TrainingConfig):
    import tensorflow as tf
    return functools.partial(tf.keras.optimizers.Adam, learning_rate=config.learning_rate)


OPTIMIZERS: Dict[str, Callable[[TrainingConfig], Callable[[], Any]]] = {
    "sgd": _sgd, "momentum": _momentum, "adam": _adam}


def trial(experiment_root: str, trial_name: Union[int, str]) -> str:
    """Directory of one trial of an experiment."""
    return paths.trial(experiment_root, trial_name)
