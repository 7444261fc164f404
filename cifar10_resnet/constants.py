"""The cifar10_resnet defaults: OpenLTH's recipes for ResNet-20 and VGG-16 on CIFAR-10.

| model | optimizer | learning rate | length | weight decay | pruning per level |
| --- | --- | --- | --- | --- | --- |
| resnet20 | SGD, momentum 0.9 | 0.1, x0.1 at epochs 80 and 120 | 160 epochs | 1e-4 (L2) | 20% global, output left out |
| vgg16 | SGD, momentum 0.9 | 0.1, x0.1 at epochs 80 and 120 | 160 epochs | 1e-4 (L2) | 20% global, output left out |

Both: batches of 128, random crop (padding 4) and horizontal flip, no
validation split, the test split evaluated every epoch (390 iterations).
"""

import os
from typing import Dict, List

from lottery_ticket.experiments.config import (DataConfig, ExperimentConfig, ModelConfig,
                                               PruneConfig, TrainConfig)
from lottery_ticket.experiments.family import Family

MODELS = ("resnet20", "vgg16")
LEVELS = 15
ITERATIONS_PER_EPOCH = 50000 // 128
_HOME = os.path.expanduser("~")
CIFAR10_LOCATION = os.environ.get(
    "LOTTERY_TICKET_CIFAR10", os.path.join(_HOME, "lottery_ticket_data", "cifar10"))
EXPERIMENT_ROOT = os.environ.get(
    "LOTTERY_TICKET_CIFAR10_RESNET_EXPERIMENTS",
    os.path.join(_HOME, "lottery_ticket_experiments", "cifar10_resnet"))


def prunable_layers(model: str) -> List[str]:
    """The convolutions of resnet20 or vgg16 (every prunable layer but 'output')."""
    if model == "resnet20":
        names = ["conv0"]
        for stage in range(3):
            for block in range(3):
                names += [f"block{stage}_{block}_conv1", f"block{stage}_{block}_conv2"]
                if stage > 0 and block == 0:
                    names.append(f"block{stage}_{block}_shortcut")
        return names
    return [f"conv{index}" for index in range(13)]


def _config(model: str) -> ExperimentConfig:
    return ExperimentConfig(
        data=DataConfig(dataset="cifar10", data_location=CIFAR10_LOCATION,
                        validation_size=0, flatten=False),
        # Keras models draw their kernels from their own layers' initializers (Kaiming
        # normal here); kernel_initializer is not read.
        model=ModelConfig(model=model, layers=()),
        training=TrainConfig(optimizer="momentum", learning_rate=0.1, momentum=0.9,
                             training_len=("epochs", 160), batch_size=128,
                             test_interval=ITERATIONS_PER_EPOCH, validate_interval=0,
                             weight_decay=1e-4, weight_decay_type="l2", lr_drops="80,120",
                             lr_drop_unit="epochs", lr_drop_factor=0.1, augment="crop_flip"),
        pruning=PruneConfig(pruning="global",
                            prune_percents={name: 0.2 for name in prunable_layers(model)},
                            levels=LEVELS),
    )


CONFIGS: Dict[str, ExperimentConfig] = {model: _config(model) for model in MODELS}
DEFAULT = CONFIGS["resnet20"]

FAMILY = Family(name="cifar10_resnet", package="lottery_ticket.cifar10_resnet",
                defaults=DEFAULT, experiment_root=EXPERIMENT_ROOT, model_defaults=CONFIGS)
