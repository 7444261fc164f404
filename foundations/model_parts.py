"""The parts ModelBase builds networks from: weight keys, losses, initial values, dropout.

Kept apart from `model_base` (which re-exports every public name here, so
``from lottery_ticket.foundations.model_base import sigmoid_cross_entropy``
keeps working).
"""

import zlib
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import save_restore

Initializer = Union[None, str, Callable]
Activation = Union[None, str, Callable[[tf.Tensor], tf.Tensor]]
Size = Union[int, Tuple[int, int]]

# A bias's key in presets, masks and weights ends in this ('{layer}.bias').
BIAS_SUFFIX = save_restore.BIAS_SUFFIX


def bias_key(layer: str) -> str:
    """The key of a layer's bias in presets, masks and weights: '{layer}.bias'.

    Args:
      layer: the layer's name.
    """
    return layer + BIAS_SUFFIX


def dropout_seed_key(layer: str) -> str:
    """The key of a dropout layer's seed in ModelBase.overriding's weights.

    Args:
      layer: the dropout layer's name.
    """
    return layer + ".dropout_seed"


# Dropout draws integers in [0, DRAW_RANGE) and drops those below rate * range.
DRAW_RANGE = 2 ** 30

# The key of the dropout step counter in ModelBase.overriding's weights.
DROPOUT_STEP = "dropout_step"


def unit_bias_masks(masks: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Bias masks that prune the bias of every unit whose incoming weights are all pruned.

    Args:
      masks: layer name -> kernel mask ([inputs, units] dense, [h, w, in,
        filters] conv), e.g. from ``pruning.prune(..., selection="unit")``.
        Bias entries already in `masks` are ignored.

    Returns:
      bias_key(layer) -> float32 0/1 array [units], for every kernel mask.

    Raises:
      ValueError: a kernel mask with fewer than two axes.
    """
    result = {}
    for layer, mask in masks.items():
        if layer.endswith(BIAS_SUFFIX):
            continue
        mask = np.asarray(mask)
        if mask.ndim < 2:
            raise ValueError(f"mask for layer {layer!r} has shape {mask.shape}; a kernel "
                             "mask has the units on its last axis ([inputs, units]).")
        alive = mask.reshape(-1, mask.shape[-1]).any(axis=0)
        result[bias_key(layer)] = alive.astype(np.float32)
    return result


def softmax_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy; labels are integer class ids [batch].

    Args:
      logits: [batch, classes] logits.
      labels: [batch] integer class ids.
    """
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits))


def softmax_accuracy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Fraction of examples whose largest logit is the label.

    Args:
      logits: [batch, classes] logits.
      labels: [batch] integer class ids.
    """
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)),
                                  tf.float32))


def binary_logits(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Logits of one output unit as the labels' shape (see sigmoid_cross_entropy).

    Args:
      logits: [batch, 1] or [batch] logits of a one-unit output layer.
      labels: the labels, whose shape the result takes.
    """
    # One output unit ([batch, 1]) against labels [batch]: drop the unit axis,
    # or the two would broadcast to [batch, batch].
    if logits.shape.rank == labels.shape.rank + 1 and logits.shape[-1] == 1:
        logits = tf.squeeze(logits, axis=-1)
    return logits


def sigmoid_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean binary cross-entropy of sigmoid outputs.

    Labels are 0/1 (any dtype, or probabilities in [0, 1]) of shape [batch] or the logits'
    shape.

    Args:
      logits: the logits of a one-unit output layer.
      labels: 0/1 labels (or probabilities) of shape [batch] or the logits' shape.
    """
    logits = binary_logits(logits, labels)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(labels, logits.dtype), logits=logits))


def sigmoid_accuracy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Fraction of outputs on the label's side of 0.5 (a logit above 0 predicts 1).

    Args:
      logits: the logits of a one-unit output layer.
      labels: 0/1 labels of shape [batch] or the logits' shape.
    """
    logits = binary_logits(logits, labels)
    predictions = tf.cast(logits > 0, tf.float32)
    targets = tf.cast(tf.cast(labels, tf.float32) > 0.5, tf.float32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, targets), tf.float32))


def derived_seed(seed: int, name: str) -> int:
    """A per-layer seed: layers of one model draw independent initial values.

    Args:
      seed: the model's seed.
      name: the layer's name.
    """
    state = np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8"))])
    return int(state.generate_state(1)[0] & 0x7FFFFFFF)


def resolve_activation(activation: Activation) -> Optional[Callable]:
    """None, a callable, or the Keras activation of that name ('relu').

    Args:
      activation: None, a callable, or a Keras activation name.

    Raises:
      TypeError: anything else.
    """
    if activation is None or callable(activation):
        return activation
    if isinstance(activation, str):
        return tf.keras.activations.get(activation)
    raise TypeError(f"activation must be None, a name or a callable, got {activation!r}.")


def initial_kernel(seed: int, name: str, shape: Sequence[int],
                   kernel_initializer: Initializer) -> np.ndarray:
    """A layer's initial kernel, drawn by `kernel_initializer`.

    The default is Glorot normal; an unseeded Keras initializer is seeded from the model's
    seed and the layer's name.

    Args:
      seed: the model's seed.
      name: the layer's name.
      shape: the kernel's shape.
      kernel_initializer: None, a Keras initializer (instance or name) or a
        callable (shape, dtype) -> values.
    """
    layer_seed = derived_seed(seed, name)
    if kernel_initializer is None:
        kernel_initializer = "glorot_normal"
    if isinstance(kernel_initializer, str):
        kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    if isinstance(kernel_initializer, tf.keras.initializers.Initializer):
        config = kernel_initializer.get_config()
        if "seed" in config and config["seed"] is None:
            # An unseeded initializer would make runs irreproducible.
            config["seed"] = layer_seed
            kernel_initializer = type(kernel_initializer).from_config(config)
    value = kernel_initializer(shape, dtype=tf.float32)
    return np.asarray(value, dtype=np.float32)


def check_shape(what: str, given: Optional[np.ndarray], shape: Sequence[int],
                weight: str) -> None:
    """Checks that a preset or mask has the shape of its weight.

    Raises ValueError if `given` (a preset or mask, `what` says whose) is not of
    the layer's `weight` ('kernel' or 'bias') shape.

    Args:
      what: whose value it is, for the message ('preset', 'mask').
      given: the preset or mask, or None (nothing to check).
      shape: the weight's shape in the model.
      weight: 'kernel' or 'bias'.

    Raises:
      ValueError: naming both shapes.
    """
    if given is not None and tuple(np.shape(given)) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(np.shape(given))}, but the layer's "
                         f"{weight} has shape {tuple(shape)}.")


def check_presets_and_masks(presets: Mapping[str, np.ndarray],
                            masks: Mapping[str, np.ndarray]) -> None:
    """Checks that presets are finite and masks are 0/1.

    Raises ValueError for presets that are not finite numbers or masks that are
    not 0/1, naming the layer.

    Args:
      presets: key -> initial values.
      masks: key -> mask.

    Raises:
      ValueError: naming the layer.
    """
    for layer, preset in presets.items():
        values = np.asarray(preset)
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            bad = (int(np.size(values)) if not np.issubdtype(values.dtype, np.number)
                   else int(np.size(values) - np.isfinite(values).sum()))
            raise ValueError(
                f"preset for layer {layer!r} holds {bad} values that are not finite "
                "numbers (NaN or inf): such weights cannot be trained. Check where the "
                "presets came from (a diverged run?).")
    for layer, mask in masks.items():
        values = np.unique(np.asarray(mask))
        if not np.all(np.isin(values, (0, 1))):
            raise ValueError(
                f"mask for layer {layer!r} holds values other than 0 and 1 "
                f"({values[:5]}...): masks mark surviving weights with 1.")


def dropout(inputs: tf.Tensor, rate: float, seed: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """Inverted dropout of `inputs` with the pattern drawn statelessly from (seed, step).

    Drawn as integers with a fixed algorithm: TensorFlow's float draws (and so
    stateless_dropout) differ under XLA, and a run's numbers would depend on
    the compilation setting.

    Args:
      inputs: the activations to drop from.
      rate: the fraction dropped, in [0, 1).
      seed: the layer's dropout seed (an int tensor).
      step: the training iteration (an int tensor); each step draws a new pattern.
    """
    draws = tf.random.stateless_uniform(tf.shape(inputs), seed=tf.stack([seed, step]),
                                        minval=0, maxval=DRAW_RANGE, dtype=tf.int32,
                                        alg="philox")
    keep = tf.cast(draws >= int(round(rate * DRAW_RANGE)), inputs.dtype)
    return inputs * keep / (1.0 - rate)
