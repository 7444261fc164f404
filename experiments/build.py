"""Data set, model, optimizer and pruning rule from an ExperimentConfig, via registries."""

import functools
from typing import Any, Callable, Optional

from lottery_ticket.datasets import registry as dataset_registry
from lottery_ticket.experiments import registry
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network



def check(config: ExperimentConfig) -> None:
    """Raises ValueError if a name in `config` is not registered, before any work."""
    dataset_registry.DATASETS.get(config["dataset"])
    registry.MODELS.get(config["model"])
    registry.OPTIMIZERS.get(config["optimizer"])
    registry.PRUNING.get(config["pruning"])
    import tensorflow as tf  # Imported here so that configurations load fast.
    try:
        tf.keras.initializers.get(config["kernel_initializer"])
    except ValueError as error:
        raise ValueError(f"kernel_initializer {config['kernel_initializer']!r} is not a "
                         "Keras initializer (e.g. glorot_normal, he_normal).") from error


@functools.lru_cache(maxsize=2)
def _cached_dataset(name: str, location: str, flatten: bool, validation_size: int,
                    batch_size: int, train_order_seed: int) -> DatasetBase:
    return dataset_registry.build(name, location, flatten=flatten,
                                  validation_size=validation_size, batch_size=batch_size,
                                  train_order_seed=train_order_seed)


def dataset(config: ExperimentConfig, train_order_seed: int) -> DatasetBase:
    """The configured data set, read once per process for each set of arguments."""
    if not config["data_location"]:
        raise ValueError(f"no data location: pass --data_location=DIR (the directory "
                         f"of the {config['dataset']} files).")
    return _cached_dataset(config["dataset"], config["data_location"], config["flatten"],
                           config["validation_size"], config["batch_size"],
                           int(train_order_seed))


def model(config: ExperimentConfig, presets: Optional[Network] = None,
          masks: Optional[Network] = None, seed: Optional[int] = None) -> ModelBase:
    """A fresh model of the configured architecture."""
    return registry.MODELS.get(config["model"])(config.model, presets, masks, seed)


def optimizer_fn(config: ExperimentConfig) -> Callable[[], Any]:
    """A function that makes a fresh configured optimizer."""
    return registry.OPTIMIZERS.get(config["optimizer"])(config.training)


def prune_fn(config: ExperimentConfig) -> Callable[[Network, Network], Network]:
    """prune(masks, final_weights) -> the next level's masks."""
    return registry.PRUNING.get(config["pruning"])(config.pruning)
