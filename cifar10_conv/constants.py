"""The cifar10_conv defaults: the paper's settings for Conv-2, Conv-4 and Conv-6.

``CONFIGS[model]`` is every default of one model's runs; ``DEFAULT`` is Conv-2's.
The runners start from ``CONFIGS[--model]`` (the Family's ``model_defaults``),
so ``--model=conv4`` alone gives Conv-4's learning rate, length and pruning
rates, and a flag given explicitly (``--learning_rate=1e-3``) still wins.

| model | Adam learning rate | iterations | pruned per level: conv / fc / output |
| --- | --- | --- | --- |
| conv2 | 2e-4 | 20,000 | 10% / 20% / 10% |
| conv4 | 3e-4 | 25,000 | 10% / 20% / 10% |
| conv6 | 3e-4 | 30,000 | 15% / 20% / 10% |

All: batches of 60, 5,000 validation examples held out from the end of the
training set, test and validation evaluation every 100 iterations, Glorot
normal kernels, no dropout (``--dropout=0.5`` for section 5).
"""

from typing import Dict

from lottery_ticket.cifar10_conv import locations
from lottery_ticket.experiments.config import (DataConfig, ExperimentConfig, ModelConfig,
                                               PruneConfig, TrainConfig)
from lottery_ticket.experiments.family import Family
from lottery_ticket.foundations.conv_architectures import ARCHITECTURES, paper_prune_percents

MODELS = tuple(ARCHITECTURES)  # conv2, conv4, conv6
LEARNING_RATES = {"conv2": 2e-4, "conv4": 3e-4, "conv6": 3e-4}
ITERATIONS = {"conv2": 20000, "conv4": 25000, "conv6": 30000}
# Enough levels to reach about 1% of the fully-connected weights (0.8 ** 20).
LEVELS = 20


def _config(model: str) -> ExperimentConfig:
    return ExperimentConfig(
        # flatten=False: the convolutions take images (32x32x3; 28x28x1 for
        # --dataset=fashion_mnist or mnist).
        data=DataConfig(dataset="cifar10", data_location=locations.CIFAR10_LOCATION,
                        validation_size=5000, flatten=False),
        model=ModelConfig(model=model, layers=(), kernel_initializer="glorot_normal",
                          dropout=0.0),
        training=TrainConfig(optimizer="adam", learning_rate=LEARNING_RATES[model],
                             training_len=("iterations", ITERATIONS[model]), batch_size=60,
                             test_interval=100, validate_interval=100),
        pruning=PruneConfig(pruning="layerwise", prune_percents=paper_prune_percents(model),
                            levels=LEVELS),
    )


CONFIGS: Dict[str, ExperimentConfig] = {model: _config(model) for model in MODELS}
DEFAULT = CONFIGS["conv2"]

FAMILY = Family(name="cifar10_conv", package="lottery_ticket.cifar10_conv", defaults=DEFAULT,
                experiment_root=locations.EXPERIMENT_ROOT, model_defaults=CONFIGS)
