"""LeNet-300-100 on MNIST: the family's defaults, as in the original codebase.

``DEFAULT`` is every default of the family in one ``ExperimentConfig``; runners,
argfiles and functions take each value as an argument or flag. The names below
it are the original codebase's, kept as aliases of its fields.
"""

from typing import Any, Dict, List, Optional, Tuple, Union

from lottery_ticket.experiments.config import (DataConfig, ExperimentConfig, ModelConfig,
                                               PruneConfig, TrainConfig)
from lottery_ticket.experiments.family import Family
from lottery_ticket.foundations import paths
from lottery_ticket.mnist_fc import locations

DEFAULT = ExperimentConfig(
    data=DataConfig(dataset="mnist", data_location=locations.MNIST_LOCATION,
                    # The paper's early-stopping criterion needs a validation split:
                    # 5,000 examples held out from the end of the training set.
                    validation_size=5000, flatten=True),
    # 300-100-10 with ReLU, Glorot-normal kernels, zero biases.
    model=ModelConfig(model="fc", layers=((300, "relu"), (100, "relu"), (10, None)),
                      kernel_initializer="glorot_normal"),
    training=TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9,
                         training_len=("iterations", 50000), batch_size=60,
                         test_interval=100, validate_interval=100),
    # The output layer is pruned at half the rate so that it stays connected.
    pruning=PruneConfig(pruning="layerwise",
                        prune_percents={"layer0": 0.2, "layer1": 0.2, "layer2": 0.1},
                        levels=30),
)

FAMILY = Family(name="mnist_fc", package="lottery_ticket.mnist_fc", defaults=DEFAULT,
                experiment_root=locations.EXPERIMENT_ROOT,
                flag_aliases={"mnist_location": "data_location"},
                location_flag="mnist_location")

# The original codebase's names.
LAYERS: List[Tuple[int, Optional[str]]] = [tuple(layer) for layer in DEFAULT["layers"]]
HYPERPARAMETERS: Dict[str, Any] = {"layers": LAYERS}
KERNEL_INITIALIZER = DEFAULT["kernel_initializer"]
OPTIMIZER = DEFAULT["optimizer"]
LEARNING_RATE = DEFAULT["learning_rate"]
TRAINING_LEN = DEFAULT["training_len"]
BATCH_SIZE = DEFAULT["batch_size"]
VALIDATION_SIZE = DEFAULT["validation_size"]
TEST_INTERVAL = DEFAULT["test_interval"]
VALIDATE_INTERVAL = DEFAULT["validate_interval"]
PRUNE_PERCENTS: Dict[str, float] = dict(DEFAULT["prune_percents"])
NUM_LEVELS = DEFAULT["levels"]  # pruning levels after the dense level 0
EXPERIMENT_NAME = "lottery"
MNIST_LOCATION = locations.MNIST_LOCATION
EXPERIMENT_ROOT = locations.EXPERIMENT_ROOT
EXPERIMENT_PATH = EXPERIMENT_ROOT


def TrainingConfig(**settings: Any) -> ExperimentConfig:  # noqa: N802 (the old class name)
    """DEFAULT with the given settings changed: the old TrainingConfig's name.

    Example: ``TrainingConfig(training_len=("iterations", 2000))``.
    """
    return DEFAULT.replace(**settings)


def trial(experiment_root: str, trial_name: Union[int, str]) -> str:
    """Directory of one trial of an experiment."""
    return paths.trial(experiment_root, trial_name)
