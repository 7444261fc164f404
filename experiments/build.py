"""Data set, model, optimizer and pruning rule from an ExperimentConfig, via the
registries of datasets.registry and experiments.components."""

import dataclasses
import functools
from typing import Any, Callable, Dict, Optional

import numpy as np

from lottery_ticket.datasets import registry as dataset_registry
from lottery_ticket.experiments import components
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import pruning, trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network



def check(config: ExperimentConfig) -> None:
    """Raises ValueError if a name in `config` is not registered, before any work.

    Args:
      config: the experiment's configuration.

    Raises:
      ValueError: an unregistered data set, model, optimizer or pruning strategy, model
        settings the model cannot take, or an unknown kernel initializer.
    """
    dataset_registry.DATASETS.get(config["dataset"])
    components.model_builder(config["model"])
    components.OPTIMIZERS.get(config["optimizer"])
    components.PRUNING.get(config["pruning"])
    model(config)  # the builder checks the model's settings (no weights yet)
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
    """The configured data set, read once per process for each set of arguments.

    Args:
      config: the experiment's configuration.
      train_order_seed: seeds the order of the training batches.

    Raises:
      ValueError: no data_location is configured, or the data set is not registered.
    """
    if not config["data_location"]:
        raise ValueError(f"no data location: pass --data_location=DIR (the directory "
                         f"of the {config['dataset']} files).")
    return _cached_dataset(config["dataset"], config["data_location"], config["flatten"],
                           config["validation_size"], config["batch_size"],
                           int(train_order_seed))


def model(config: ExperimentConfig, presets: Optional[Network] = None,
          masks: Optional[Network] = None, seed: Optional[int] = None) -> ModelBase:
    """A fresh model of the configured architecture.

    It holds the training settings that live in the model (L2 weight decay, label smoothing,
    augmentation).

    Args:
      config: the experiment's configuration.
      presets: layer -> initial weights (None: drawn from the model's seed).
      masks: layer -> mask (None: dense).
      seed: the model's seed (initial weights, dropout, augmentation).

    Raises:
      ValueError: such a setting for a model that cannot take it.
    """
    built = components.model_builder(config["model"])(config.model, presets, masks, seed)
    settings = {"weight_decay": (config["weight_decay"]
                                 if config["weight_decay_type"] == "l2" else 0.0),
                "label_smoothing": config["label_smoothing"], "augment": config["augment"]}
    if any(settings.values()):
        configure = getattr(built, "set_training_settings", None)
        if configure is None:
            given = ", ".join(f"{key}={value}" for key, value in settings.items() if value)
            raise ValueError(f"{given}: the {config['model']} model cannot take these "
                             "(Keras models can: --model=module:function or resnet20, "
                             "vgg16); for weight decay pass --weight_decay_type=decoupled.")
        configure(**settings)
    return built


build_model = model  # the name check_fit uses, where `model` is its argument


def optimizer_fn(config: ExperimentConfig, start_iteration: int = 0) -> Callable[[], Any]:
    """A function that makes a fresh configured optimizer.

    The optimizer has the learning-rate schedule (lr_drops, warmup_iterations) and decoupled
    weight decay, if set.

    Epoch drop points are converted with the data set's iterations per epoch.

    Args:
      config: the configuration.
      start_iteration: the iteration training starts at (K for a level rewound
        to K): the schedule is read at the optimizer's step + start_iteration,
        so a rewound level drops its rate at the same iterations as level 0.
    """
    make = components.OPTIMIZERS.get(config["optimizer"])(config.training)
    extra: Dict[str, Any] = {}
    drops = config_lib.parse_drops(config["lr_drops"])
    if drops or config["warmup_iterations"]:
        from lottery_ticket.experiments.schedules import PiecewiseWarmup
        if drops and config["lr_drop_unit"] == "epochs":
            per_epoch = iterations_per_epoch(config)
            drops = [drop * per_epoch for drop in drops]
        extra["learning_rate"] = PiecewiseWarmup(config["learning_rate"], drops,
                                                 config["lr_drop_factor"],
                                                 config["warmup_iterations"],
                                                 offset=start_iteration)
    if config["weight_decay"] and config["weight_decay_type"] == "decoupled":
        extra["weight_decay"] = config["weight_decay"]
    if not extra:
        return make
    return lambda: _with(make, extra)


def _with(make: Callable[[], Any], extra: Dict[str, Any]) -> Any:
    if isinstance(make, functools.partial):
        return make.func(*make.args, **{**make.keywords, **extra})
    raise ValueError("this optimizer builder does not return a functools.partial, so the "
                     "learning-rate schedule and decoupled weight decay cannot be added to it.")


@functools.lru_cache(maxsize=8)
def _iterations_per_epoch(name: str, location: str, validation_size: int,
                          batch_size: int) -> int:
    data = dataset_registry.build(name, location, flatten=True,
                                  validation_size=validation_size, batch_size=batch_size)
    return int(data.iterations_per_epoch)


def iterations_per_epoch(config: ExperimentConfig) -> int:
    """The configured data set's training iterations per epoch (read once per process).

    Args:
      config: the experiment's configuration.

    Raises:
      ValueError: no data_location is configured.
    """
    if not config["data_location"]:
        raise ValueError("lr_drops in epochs need the data set's size: pass "
                         "--data_location=DIR, or give --lr_drop_unit=iterations.")
    return _iterations_per_epoch(config["dataset"], config["data_location"],
                                 config["validation_size"], config["batch_size"])


def scores_seed(config: ExperimentConfig, trial_seed: Optional[int] = None) -> int:
    """The seed of random pruning scores.

    Drawn from prune_seed and the trial's seed, so that the trials of a batch are pruned
    differently and each is repeatable.

    Args:
      config: the experiment's configuration.
      trial_seed: the trial's seed (None, or scores that are not random: prune_seed itself).
    """
    if trial_seed is None or "random" not in config["prune_scores"]:
        return config["prune_seed"]
    state = np.random.SeedSequence([int(config["prune_seed"]), int(trial_seed)])
    return int(state.generate_state(1)[0] & 0x7FFFFFFF)


def prune_fn(config: ExperimentConfig, trial_seed: Optional[int] = None
             ) -> pruning.PruningRule:
    """The configured pruning rule.

    rule(masks, final_weights, level=None, context=None) -> the next level's masks, random
    scores seeded by scores_seed(config, trial_seed). It accepts `context`, so the
    experiment loop hands it the model and data providers scores such as snip read;
    rule.get_config() is what runs record.

    Args:
      config: the experiment's configuration.
      trial_seed: the trial's seed, mixed into the seed of random scores (see scores_seed).
    """
    pruning_config = dataclasses.replace(config.pruning,
                                         prune_seed=scores_seed(config, trial_seed))
    return components.PRUNING.get(config["pruning"])(pruning_config)


def pruning_rule_config(config: ExperimentConfig, trial_seed: Optional[int] = None
                        ) -> Dict[str, Any]:
    """What a run records of its pruning rule (done.json's run_info.pruning_rule).

    Args:
      config: the experiment's configuration.
      trial_seed: the trial's seed (see scores_seed).
    """
    rule = prune_fn(config, trial_seed)
    get_config = getattr(rule, "get_config", None)
    return get_config() if callable(get_config) else {"builder": config["pruning"]}


def check_fit(config: ExperimentConfig, dataset: DatasetBase, model: ModelBase,
              masks: Optional[Network] = None, presets: Optional[Network] = None,
              pruned: bool = False) -> None:
    """Checks, before any training, that the data, the model and the inputs fit.

    Args:
      config: the configuration (for prune_percents).
      dataset: the data.
      model: the model; built here.
      masks: the run's masks, if any: they must name every layer of the model (a
        missing file would silently train that layer dense).
      presets: the run's initial weights, if any: they must name every layer of the
        model (a missing file would silently train that layer from a random start).
      pruned: whether prune_percents will be used (a lottery trial).

    Raises:
      ValueError: naming the layer, label or setting that does not fit (a
        rewind_iteration at or after the end of training, too).
    """
    total = trainer.training_iterations(config["training_len"], dataset)
    if config["rewind_iteration"] >= total:
        raise ValueError(
            f"rewind_iteration is {config['rewind_iteration']} but training_len "
            f"{config['training_len']} is {total} iterations on this data: the snapshot "
            f"must be taken before training ends. Pass --rewind_iteration below {total}.")
    model.build(dataset.example_shape)
    layers = model.layer_names
    for kind, network in (("masks", masks), ("presets", presets)):
        missing = [layer for layer in layers if network is not None and layer not in network]
        if missing:
            raise ValueError(f"the {kind} have no entry for layer(s) {missing} (no "
                             f"{missing[0]}.npy): the model's layers are {layers}. Every "
                             f"layer needs one, or that layer would train unmasked or from a "
                             "random start.")
    if pruned:
        unknown = sorted(set(config["prune_percents"]) - set(layers))
        if unknown:
            raise ValueError(f"prune_percents names layer(s) {unknown} that the model does "
                             f"not have; its layers are {layers}.")
        # One pruning step on the untrained network finds what the strategy refuses
        # (unit pruning of the output layer, say) before level 0 trains, not after.
        # The context lets a score that reads the model or the data (snip) run too.
        weights, data = model.get_current_weights(), dataset
        pruning.call_with_context(
            prune_fn(config), model.masks, weights, pruning.Context(
                model.masks, weights, initial=weights, level=1,
                model_fn=lambda presets, masks: build_model(config, presets, masks, None),
                dataset_fn=lambda: data))
    outputs = int(model(dataset.train[0][:1]).shape[-1])
    for name, (_, labels) in dataset.splits.items():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= outputs:
            raise ValueError(f"the {name} labels run from {low} to {high}, but the model has "
                             f"{outputs} outputs (classes 0 to {outputs - 1}): the data set "
                             "and the model's last layer do not match.")


def data_identity(config: ExperimentConfig) -> Dict[str, Any]:
    """What identifies the data a run trains on: its name and its files' checksums.

    Args:
      config: the experiment's configuration.
    """
    return dataset_registry.fingerprint(config["dataset"], config["data_location"])
