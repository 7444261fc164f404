"""The components a configuration names: models, optimizers and pruning rules.

(Formerly ``experiments.registry``, which still imports as this module's names.)

Each registry maps the name a configuration gives (``--model``, ``--optimizer``,
``--pruning``) to a builder that takes the configuration's concern:

* ``MODELS``: build(model_config, presets, masks, seed) -> ModelBase;
* ``OPTIMIZERS``: build(train_config) -> a function making a fresh optimizer;
* ``PRUNING``: build(prune_config) -> a pruning rule, rule(masks, final_weights,
  level=None, context=None) -> masks (a ``foundations.pruning.PruningRule``, whose
  ``get_config()`` runs record); ``layerwise``, ``global`` and ``unit`` are the
  selections of ``foundations.pruning``, ranked by ``--prune_scores`` (a name in
  ``pruning.WEIGHT_SCORES`` or ``UNIT_SCORES``).

Data sets are registered in ``lottery_ticket.datasets.registry``. A new family
registers its model in its own package (see the README's worked example).
"""

import functools
import importlib
from typing import Any, Callable, Optional

from lottery_ticket.foundations import pruning
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.model_conv import ModelConv
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.foundations.registry import Registry
from lottery_ticket.foundations.save_restore import Network

ModelBuilder = Callable[[Any, Optional[Network], Optional[Network], Optional[int]], ModelBase]
OptimizerBuilder = Callable[[Any], Callable[[], Any]]
PruneBuilder = Callable[[Any], Callable[[Network, Network], Network]]

MODELS: Registry[ModelBuilder] = Registry("model")
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")
PRUNING: Registry[PruneBuilder] = Registry("pruning strategy")


def _fc(config, presets: Optional[Network], masks: Optional[Network],
        seed: Optional[int]) -> ModelBase:
    if not config.layers or any(len(layer) != 2 or not isinstance(layer[0], int)
                                for layer in config.layers):
        raise ValueError(f"layers {config.layers!r}: the fc model needs (units, activation) "
                         "pairs, e.g. [(300, 'relu'), (100, 'relu'), (10, None)].")
    _no_dropout(config, "fc")
    return ModelFc({"layers": [list(layer) for layer in config.layers],
                    "kernel_initializer": config.kernel_initializer},
                   presets=presets, masks=masks, seed=seed)


def _no_dropout(config, model: str) -> None:
    if config.dropout:
        raise ValueError(f"dropout {config.dropout}: the {model} model has no dropout; "
                         "leave --dropout=0, or use a model that has it (conv2, conv4, "
                         "conv6).")


MODELS.register("fc", _fc)


def _conv(architecture: str) -> ModelBuilder:
    """The builder of the paper's Conv-2/4/6 (foundations.model_conv)."""
    def build(config, presets: Optional[Network], masks: Optional[Network],
              seed: Optional[int]) -> ModelBase:
        if config.layers:
            raise ValueError(f"layers {config.layers!r}: {architecture} has a fixed "
                             "architecture; leave layers empty (--layers=\"()\").")
        return ModelConv(architecture, dropout=config.dropout,
                         kernel_initializer=config.kernel_initializer,
                         presets=presets, masks=masks, seed=seed)
    build.__qualname__ = f"_conv.{architecture}"
    return build


# The paper's section 3 networks: 3x3 convolutions and 2x2 max-pools, then 256, 256, 10.
for _architecture in ("conv2", "conv4", "conv6"):
    MODELS.register(_architecture, _conv(_architecture))


def keras_builder(function: Callable[..., Any], name: str) -> ModelBuilder:
    """The model builder of a Keras model.

    `function` builds the Keras model (taking one example's shape, or nothing) and the
    library's KerasModel trains it, its initial values drawn from its layers' initializers
    with the run's seed.

    Args:
      function: builds the Keras model, from one example's shape or from nothing.
      name: the model's name (for messages).
    """
    def build(config, presets: Optional[Network], masks: Optional[Network],
              seed: Optional[int]) -> ModelBase:
        from lottery_ticket.foundations.keras_model import KerasModel  # loads Keras
        if config.layers:
            raise ValueError(f"layers {config.layers!r}: the Keras model {name} defines its "
                             "own layers; leave layers empty (--layers=\"()\").")
        _no_dropout(config, name)
        return KerasModel(function, presets=presets, masks=masks, seed=seed,
                          weights="seeded")
    build.__qualname__ = f"keras_builder.{name}"
    return build


def model_builder(name: str) -> ModelBuilder:
    """The builder of a registered model, or of 'module:function'.

    'module:function' names a function that builds a Keras model (see keras_builder).

    Args:
      name: a name registered in MODELS, or 'module:function'.

    Raises:
      ValueError: an unregistered name, or a module or function that is not there.
    """
    if ":" not in name:
        return MODELS.get(name)
    module_name, _, function_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--model={name}: cannot import module {module_name!r} ({error}); "
                         "put it on PYTHONPATH, or name a registered model.") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"--model={name}: module {module_name!r} has no function "
                         f"{function_name!r} that builds a Keras model.")
    return keras_builder(function, name)


def _resnet20(input_shape):
    from lottery_ticket.foundations import keras_architectures
    return keras_architectures.resnet_cifar(20, input_shape)


def _vgg16(input_shape):
    from lottery_ticket.foundations import keras_architectures
    return keras_architectures.vgg_cifar(16, input_shape)


# OpenLTH's CIFAR-10 networks (foundations.keras_architectures), as Keras models.
MODELS.register("resnet20", keras_builder(_resnet20, "resnet20"))
MODELS.register("vgg16", keras_builder(_vgg16, "vgg16"))


def _keras_optimizer(name: str, **fixed) -> OptimizerBuilder:
    def build(config) -> Callable[[], Any]:
        import tensorflow as tf  # Imported here so that configurations load fast.
        arguments = {key: getattr(config, value) for key, value in fixed.items()}
        return functools.partial(getattr(tf.keras.optimizers, name),
                                 learning_rate=config.learning_rate, **arguments)
    return build


OPTIMIZERS.register("sgd", _keras_optimizer("SGD"))
OPTIMIZERS.register("momentum", _keras_optimizer("SGD", momentum="momentum",
                                                  nesterov="nesterov"))
OPTIMIZERS.register("adam", _keras_optimizer("Adam"))


def _selection(selection: str) -> PruneBuilder:
    """A builder of a pruning.PruningRule with this selection and the configured
    scores, percents and seed (checked here, before any training)."""
    def build(config) -> pruning.PruningRule:
        return pruning.PruningRule(
            dict(config.prune_percents), selection=selection, scores=config.prune_scores,
            seed=config.prune_seed, score_config=pruning.score_settings(
                config.prune_scores, lambda field: getattr(config, field)))
    build.__qualname__ = f"_selection.{selection}"  # one registry entry per selection
    return build


# Exact round(p * surviving) per layer, ties by index: the paper's, and the default.
PRUNING.register("layerwise", _selection("layerwise"))
# The layers that share a rate in prune_percents form one pool under one threshold.
PRUNING.register("global", _selection("global"))
# Whole units (kernel columns, conv filters) and the next layer's matching inputs.
PRUNING.register("unit", _selection("unit"))
