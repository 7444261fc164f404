"""What the Keras adapter reads from a Keras model: which of its layers it supports,
the stable names their values are saved under, and models built from builder functions.

Kept apart from `keras_model` (the adapter itself) so that each stays readable.
"""

import inspect
import re
from typing import Any, Callable, Dict, List, Tuple

import keras


BN_PARTS = ("gamma", "beta", "moving_mean", "moving_variance")


def bn_key(layer: str, part: str) -> str:
    """The key of a BatchNormalization value: '{layer}.gamma', '{layer}.moving_mean'...

    Args:
      layer: the BatchNormalization layer's key (see layer_keys).
      part: 'gamma', 'beta', 'moving_mean' or 'moving_variance'.
    """
    return f"{layer}.{part}"


def layers_of(model: keras.Model) -> List[keras.layers.Layer]:
    """The model's layers, without its InputLayer.

    Args:
      model: a Keras model.
    """
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def layer_kind(layer: keras.layers.Layer) -> str:
    """'dense', 'conv2d', 'bn', 'dropout', 'stateless', or why it is refused.

    Args:
      layer: one Keras layer.
    """
    if isinstance(layer, keras.Model):
        return "a nested model (build the model from its layers directly)"
    if type(layer) is keras.layers.Dense or type(layer) is keras.layers.Conv2D:
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return "a LoRA or quantized layer"
        return "dense" if isinstance(layer, keras.layers.Dense) else "conv2d"
    if type(layer) is keras.layers.BatchNormalization:
        if getattr(layer, "synchronized", False) or getattr(layer, "renorm", False):
            return "a synchronized or renormalizing batch normalization"
        return "bn"
    if type(layer) is keras.layers.Dropout:
        if layer.noise_shape is not None:
            return "dropout with a noise_shape"
        return "dropout"
    random_layers = (keras.layers.GaussianNoise, keras.layers.GaussianDropout,
                     keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                     keras.layers.AlphaDropout)
    if isinstance(layer, random_layers) or "Random" in type(layer).__name__:
        return "a random layer (only Dropout is reproducible here)"
    if layer.weights:
        return "a layer with weights other than Dense, Conv2D and BatchNormalization"
    return "stateless"


def check_supported(model: keras.Model) -> None:
    """Raises ValueError naming every layer of `model` the adapter cannot handle.

    Args:
      model: a built Keras model.

    Raises:
      ValueError: the model is not built, or has unsupported layers (listed).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"KerasModel takes a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ValueError("the Keras model is not built: give it an Input (or call "
                         "model.build(input_shape)) before passing it to KerasModel.")
    refused = [f"{layer.name} ({type(layer).__name__}: {layer_kind(layer)})"
               for layer in layers_of(model)
               if layer_kind(layer) not in ("dense", "conv2d", "bn", "dropout", "stateless")]
    if refused:
        raise ValueError(
            "the Keras model has layers the lottery-ticket adapter cannot handle: "
            + "; ".join(refused) + ". Supported: Dense and Conv2D (prunable), "
            "BatchNormalization, Dropout, and layers without weights (pooling, flatten, "
            "Add, activations, padding...). Replace those layers or build the network "
            "with ModelBase.")


def snake_case(name: str) -> str:
    """'BatchNormalization' -> 'batch_normalization', as Keras names layers.

    Args:
      name: a class name in CamelCase.
    """
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_keys(model: keras.Model) -> Dict[int, str]:
    """The name each layer's values are saved under, by id(layer).

    id(layer) -> the name its values are saved under: the layer's own name, but a
    name Keras made up ('dense_7': the class and a process-wide count) becomes the
    class and the layer's position among the model's layers of its class ('dense',
    'dense_1', ...), so that every build of the model, in any process, has the same
    names.

    Args:
      model: a built Keras model.

    Raises:
      ValueError: two layers would share a name.
    """
    keys, counts = {}, {}
    for layer in layers_of(model):
        snake = snake_case(type(layer).__name__)
        position = counts.get(snake, 0)
        counts[snake] = position + 1
        if re.fullmatch(re.escape(snake) + r"(_\d+)?", layer.name):
            keys[id(layer)] = snake if position == 0 else f"{snake}_{position}"
        else:
            keys[id(layer)] = layer.name
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"the Keras model's layers would share names ({sorted(keys.values())}): "
                         "give its Dense, Conv2D, BatchNormalization and Dropout layers "
                         "distinct names.")
    return keys


# Keras models built by a builder function, by (builder, input shape): every model of a
# process built from them shares one Keras model (whose weights are never written).
_BUILT: Dict[Tuple[Any, Tuple[int, ...]], keras.Model] = {}


def built_keras_model(builder: Callable[..., keras.Model],
                      input_shape: Tuple[int, ...]) -> keras.Model:
    """builder(input_shape), or builder() if it takes no argument: once per process.

    Args:
      builder: a function returning a keras.Model, taking the input shape or nothing.
      input_shape: the shape of one example.

    Raises:
      ValueError: the builder does not return a keras.Model.
    """
    key = (builder, tuple(int(d) for d in input_shape))
    if key not in _BUILT:
        try:
            takes_shape = bool(inspect.signature(builder).parameters)
        except (TypeError, ValueError):
            takes_shape = True
        model = builder(key[1]) if takes_shape else builder()
        if not isinstance(model, keras.Model):
            raise ValueError(f"the model builder {getattr(builder, '__name__', builder)!r} "
                             f"returned {type(model).__name__}, not a keras.Model.")
        if not model.built:
            model.build((None,) + key[1])
        _BUILT[key] = model
    return _BUILT[key]


def is_softmax(activation: Any) -> bool:
    """Whether a layer's activation is the softmax (its outputs are probabilities).

    Args:
      activation: a Keras layer's activation (a function or a name).
    """
    return activation is keras.activations.softmax or getattr(
        activation, "__name__", "") == "softmax"
