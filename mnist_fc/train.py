"""Training one LeNet-300-100 network on MNIST, optionally masked and preset."""

import functools
import logging
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from lottery_ticket.datasets import dataset_mnist
from lottery_ticket.foundations import model_fc
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.mnist_fc import constants

logger = logging.getLogger("lottery_ticket")

Network = Dict[str, np.ndarray]


@functools.lru_cache(maxsize=2)
def load_dataset(mnist_location: str, validation_size: int, batch_size: int,
                 train_order_seed: int) -> dataset_mnist.DatasetMnist:
    """Reads MNIST once per process for each set of arguments."""
    return dataset_mnist.DatasetMnist(mnist_location, train_order_seed=train_order_seed,
                                      train_batch_size=batch_size,
                                      validation_size=validation_size)


def make_model(config: constants.TrainingConfig, presets: save_restore.NetworkLike = None,
               masks: save_restore.NetworkLike = None,
               seed: Optional[int] = None) -> model_fc.ModelFc:
    """A fresh ModelFc for `config`."""
    return model_fc.ModelFc(config.hyperparameters, presets=presets, masks=masks, seed=seed)


def train_model(dataset: dataset_mnist.DatasetMnist, model: model_fc.ModelFc,
                output_dir: str, config: constants.TrainingConfig,
                run_info: Optional[Mapping[str, Any]] = None, progress_label: str = ""
                ) -> Tuple[Network, Network]:
    """Trains a built or unbuilt model with `config` and writes the run."""
    info = {"config": config.to_json()}
    info.update(run_info or {})
    return trainer.train(
        dataset, model, config.optimizer_fn(), config.training_len, output_dir,
        test_interval=config.test_interval,
        validate_interval=config.validate_interval if config.validation_size else None,
        run_info=info, progress_label=progress_label)


def source_of(network: save_restore.NetworkLike) -> Optional[str]:
    """How a masks/presets argument is recorded: its absolute path, 'dict' or None."""
    if network is None:
        return None
    if isinstance(network, (str, os.PathLike)):
        return os.path.abspath(os.fspath(network))
    return "dict"


def train(output_dir: str, mnist_location: str = constants.MNIST_LOCATION,
          config: Optional[constants.TrainingConfig] = None,
          masks: save_restore.NetworkLike = None, presets: save_restore.NetworkLike = None,
          seed: int = 0, train_order_seed: Optional[int] = None,
          run_info: Optional[Mapping[str, Any]] = None) -> Tuple[Network, Network]:
    """Trains one network and writes its run directory, unless it is complete.

    Args:
      output_dir: the run directory (initial/, final/, masks/, metrics.json,
        summaries/, done.json). If it already holds a complete run made with
        the same settings, that run is read back instead of retrained; a
        complete run made with other settings is a ValueError.
      mnist_location: directory of the MNIST (or Fashion-MNIST) IDX files.
      config: training hyperparameters; default constants.TrainingConfig().
      masks: masks as a dict or a saved directory (see save_restore.standardize).
      presets: initial kernels as a dict or a saved directory.
      seed: seeds the initial weights of layers without presets.
      train_order_seed: seeds the batch order; default `seed`.
      run_info: extra facts to record in done.json (and to compare on reuse).

    Returns:
      (initial_weights, final_weights).
    """
    config = config or constants.TrainingConfig()
    order_seed = int(seed if train_order_seed is None else train_order_seed)
    info = {"config": config.to_json(), "seed": int(seed), "train_order_seed": order_seed,
            "masks": source_of(masks), "presets": source_of(presets)}
    info.update(run_info or {})
    saved = save_restore.load_complete_run(output_dir, info)
    if saved is not None:
        logger.info("%s is already complete; reading it back.", output_dir)
        return saved[0], saved[1]
    dataset = load_dataset(mnist_location, config.validation_size, config.batch_size,
                           order_seed)
    model = make_model(config, save_restore.standardize(presets),
                       save_restore.standardize(masks), seed=seed)
    return train_model(dataset, model, output_dir, config, info)


def train_control(control: str, output_dir: str, masks: Network, presets: Optional[Network],
                  seed: int, sources: Mapping[str, Any],
                  mnist_location: str = constants.MNIST_LOCATION,
                  config: Optional[constants.TrainingConfig] = None,
                  train_order_seed: Optional[int] = None,
                  model_seed: Optional[int] = None) -> Tuple[Network, Network]:
    """Trains one control run and records which control and ticket made it.

    Args:
      control: the control's name (reinit, reuse, rearrange, ...).
      output_dir: the run directory.
      masks, presets: the control's own masks and initial weights.
      seed: the control's seed.
      sources: where the ticket came from, recorded in done.json.
      mnist_location, config: data and training settings.
      train_order_seed: batch order; default `seed`.
      model_seed: seeds layers without presets; default `seed`.
    """
    info = {"control": control, "control_seed": int(seed)}
    info.update({key: source_of(value) for key, value in sources.items()})
    return train(output_dir, mnist_location, config, masks=masks, presets=presets,
                 seed=int(seed if model_seed is None else model_seed),
                 train_order_seed=int(seed if train_order_seed is None else train_order_seed),
                 run_info=info)
