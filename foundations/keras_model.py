"""Bring your own Keras model: a built Keras 3 model as a ModelBase.

``KerasModel(keras_model)`` trains, prunes and resets a Sequential or
functional Keras model (or a subclassed one whose ``call`` uses its layers)
like any other network of the library:

* Dense and Conv2D kernels are the masked, preset layers (named by the Keras
  layers' names, in the order the model calls them; the last one is
  ``output_layer``). The mask is applied in the forward pass (kernel * mask),
  so pruned weights stay exactly 0 under any optimizer and weight decay.
* BatchNormalization's gamma, beta and moving statistics are variables of
  this model, never pruned: presets take them under '{layer}.gamma',
  '{layer}.beta', '{layer}.moving_mean', '{layer}.moving_variance', and
  ``get_current_weights(include_biases=True)`` gives them with the biases, so
  they are saved in initial/ and final/ and taken by rewind snapshots. A
  level's model is built afresh from the same seed (or the same Keras
  weights), so every level starts from level 0's BN values (or the rewind
  point's). Training updates the moving statistics; evaluation uses them.
* Dropout drops statelessly (ModelBase.dropout_layer): reproducible from the
  seed and the iteration.
* Every other layer without weights (pooling, flatten, Add, activations,
  padding, reshape...) runs as the model defines it. Layers with other
  weights, random layers and nested models are refused in one error that
  names them all.

The forward pass runs the Keras model's own ``call`` with each handled
layer's ``call`` replaced, for the duration of the call, by one computing
with this model's variables: nothing about the Keras model is rewritten.

Initial values: with ``seed=None`` (and no ``weights`` argument) the Keras
model's own current weights; with a seed, fresh draws from each layer's own
initializers (unseeded ones seeded from the seed and the layer's name), so a
registered Keras model is reproducible from the run's seed.
"""

import contextlib
import copy
import json
from typing import (Any, Callable, Dict, Hashable, Iterator, Mapping, Optional, Tuple,
                    Union)

import keras
import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.keras_layers import (BN_PARTS, bn_key, built_keras_model,  # noqa: F401
                                                     check_supported, is_softmax, layer_keys,
                                                     layer_kind, layers_of)
from lottery_ticket.foundations.model_base import ModelBase, bias_key, derived_seed

# What '{layer}.{name}' keys a BatchNormalization layer's values are saved under.
_BN_TRAINABLE = ("gamma", "beta")
# The augmentation a model can do to its training inputs (see KerasModel).
AUGMENTATIONS = ("", "crop_flip")


class KerasModel(ModelBase):
    """A built Keras model, trained, pruned and reset as a ModelBase.

    Args:
      keras_model: a built keras.Model (Sequential, functional, or subclassed
        using its layers in call()).
      presets: as in ModelBase; layer names are the Keras layers' names; presets may also
        hold BatchNormalization values (bn_key).
      masks: as in ModelBase; layer names are the Keras layers' names.
      seed: with None, the initial values are the Keras model's own weights;
        with a seed, fresh draws from the layers' initializers (see the module
        docstring). It also seeds dropout.
      weights: 'keras' or 'seeded', to choose independently of `seed`.
      weight_decay: L2 regularization 0.5 * weight_decay * sum(kernel**2) of
        the (effective) kernels added to the training loss (as SGD's weight
        decay in OpenLTH); evaluation losses leave it out.
      label_smoothing: of the cross-entropy training and evaluation loss.
      augment: '' or 'crop_flip': training inputs (images) are randomly
        shifted by up to 4 pixels (zero padding 4 then a random crop) and
        flipped horizontally with probability 1/2, drawn statelessly from
        the seed and the iteration, so a run and its resumption augment the
        same way. Evaluation never augments.

    The loss is the softmax cross-entropy of the outputs: of logits, or of
    probabilities when the model ends in a softmax (recognized on its last
    layer's activation).

    Raises:
      ValueError: neither a built keras.Model nor a function that builds one, layers the
        adapter cannot handle (see keras_layers.check_supported), or `weights` other than
        'keras' and 'seeded'.
    """

    # Conv nets on 32x32 images: bound the activations held during evaluation.
    evaluation_chunk = 1000

    def __init__(self, keras_model: Union[keras.Model, Callable[..., keras.Model]],
                 presets: save_restore.NetworkLike = None,
                 masks: save_restore.NetworkLike = None, seed: Optional[int] = None,
                 weights: Optional[str] = None, weight_decay: float = 0.0,
                 label_smoothing: float = 0.0, augment: str = ""):
        if isinstance(keras_model, keras.Model):
            check_supported(keras_model)
        elif not callable(keras_model):
            raise ValueError(f"KerasModel takes a built keras.Model or a function that "
                             f"builds one, got {type(keras_model).__name__}.")
        if weights is None:
            weights = "keras" if seed is None else "seeded"
        if weights not in ("keras", "seeded"):
            raise ValueError(f"weights is {weights!r}; it must be 'keras' (the Keras "
                             "model's own) or 'seeded' (drawn from its initializers).")
        super().__init__(presets=presets, masks=masks, seed=seed, name="keras_model")
        self._keras: Optional[keras.Model] = None
        self._builder = None if isinstance(keras_model, keras.Model) else keras_model
        self._use_keras_weights = weights == "keras"
        self._bn: Dict[str, Dict[str, tf.Variable]] = {}
        self._bn_settings: Dict[str, Tuple[int, float, float]] = {}
        self._training_trace = False
        self._augment_step: Optional[tf.Variable] = None
        self._weight_decay, self._label_smoothing, self._augment = 0.0, 0.0, ""
        self.set_training_settings(weight_decay, label_smoothing, augment)
        if self._builder is None:
            self._attach(keras_model)

    def set_training_settings(self, weight_decay: float = 0.0, label_smoothing: float = 0.0,
                              augment: str = "") -> None:
        """Sets the L2 weight decay, label smoothing and augmentation (see the class).

        Only before the model is built.

        Args:
          weight_decay: the L2 coefficient (>= 0) added to the training loss.
          label_smoothing: the label smoothing of the cross-entropy, in [0, 1).
          augment: '' (none) or 'crop_flip' (see the class).

        Raises:
          ValueError: a value out of range, or a model already built.
        """
        if self._built:
            raise ValueError("set_training_settings() must come before the model is built.")
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment is {augment!r}; it must be one of {AUGMENTATIONS} "
                             "('' for none).")
        if weight_decay < 0 or not 0 <= label_smoothing < 1:
            raise ValueError(f"weight_decay {weight_decay} must be >= 0 and label_smoothing "
                             f"{label_smoothing} in [0, 1).")
        self._weight_decay = float(weight_decay)
        self._label_smoothing = float(label_smoothing)
        self._augment = augment
        if augment and self._augment_step is None:
            with tf.init_scope():
                self._augment_step = tf.Variable(tf.constant(0, tf.int64), trainable=False,
                                                 name="augment_step")

    def _attach(self, keras_model: keras.Model) -> None:
        check_supported(keras_model)
        self._keras = keras_model
        self._keys = layer_keys(keras_model)
        last = layers_of(keras_model)[-1]
        self._probabilities = is_softmax(getattr(last, "activation", None)) or (
            isinstance(last, keras.layers.Softmax))

    # -- Identity and copying ---------------------------------------------------

    @property
    def keras_model(self) -> keras.Model:
        """The Keras model whose architecture this model computes (its weights unused)."""
        self._require_built()
        return self._keras

    @property
    def output_layer(self) -> str:
        """The last prunable layer the model calls: its output layer."""
        self._require_built()
        return self._layer_names[-1]

    def trace_key(self) -> Optional[Hashable]:
        """The Keras model's architecture (its JSON) and the loss settings.

        None for a model that cannot describe itself (then compiled functions are not
        shared).
        """
        try:
            config = json.loads(self._keras.to_json())
        except Exception:  # noqa: BLE001 - a subclassed model without get_config
            return None
        # Keras numbers the names it makes up (functional_7, re_lu_3); they change
        # nothing computed, so each layer's name becomes its position.
        names = {self._keras.name: "model"}
        names.update({layer.name: f"#{index}" for index, layer in enumerate(self._keras.layers)})
        architecture = json.dumps(_renamed(config, names), sort_keys=True)
        return (architecture, self._weight_decay, self._label_smoothing, self._augment,
                self._probabilities)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "KerasModel":
        # The Keras model holds no state this model uses (its layers compute with
        # this model's variables), so copies share it; the variables are copied.
        memo[id(self._keras)] = self._keras
        memo[id(self._builder)] = self._builder
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    # -- The forward pass -------------------------------------------------------

    def forward(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Runs the Keras model on the masked variables.

        Runs the Keras model's call with the handled layers computing from this
        model's (masked) variables.

        Args:
          inputs: a batch in the Keras model's input shape.
          training: True while training (dropout drops, batch normalization uses and updates
            batch statistics, augmentation applies); False for evaluation.

        Returns:
          The Keras model's output, [batch, classes].

        Raises:
          ValueError: the Keras model has several outputs.
        """
        self._training_trace = bool(training)
        if self._keras is None:
            self._attach(built_keras_model(self._builder, tuple(inputs.shape[1:])))
        if not self._built:
            self._create_variables()
        if training and self._augment:
            inputs = self.augmented_inputs(inputs)
        with self._patched_layers():
            outputs = self._keras(inputs, training=bool(training))
        if isinstance(outputs, (list, tuple, dict)):
            raise ValueError("the Keras model has several outputs; the adapter trains a "
                             "model with one output (the class scores).")
        return tf.convert_to_tensor(outputs)

    def __call__(self, inputs, training: bool = False) -> tf.Tensor:
        outputs = super().__call__(inputs, training)
        if training and self._augment_step is not None:
            self._augment_step.assign_add(1)
        return outputs

    def set_training_step(self, step: int) -> None:
        """Sets the iteration dropout and augmentation draw from (see ModelBase).

        Args:
          step: the iteration the next training call is (the run's first iteration).
        """
        super().set_training_step(step)
        if self._augment_step is not None:
            self._augment_step.assign(int(step))

    def augmented_inputs(self, images: tf.Tensor) -> tf.Tensor:
        """The training augmentation of a batch at the current step (see the class).

        Args:
          images: a [batch, height, width, channels] batch of training images.

        Returns:
          The augmented batch, of the same shape.

        Raises:
          ValueError: images that are not [batch, height, width, channels].
        """
        if images.shape.rank != 4:
            raise ValueError(f"augment={self._augment!r} needs images [batch, height, "
                             f"width, channels], got shape {images.shape}; read the data "
                             "with flatten=False.")
        seed = tf.stack([tf.constant(derived_seed(self.seed, "augment"), tf.int64),
                         tf.convert_to_tensor(self._augment_step)])
        batch = tf.shape(images)[0]
        height, width = int(images.shape[1]), int(images.shape[2])
        padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]])
        offsets = tf.random.stateless_uniform([batch, 2], seed, 0, 9, dtype=tf.int32)
        flips = tf.random.stateless_uniform([batch], seed + [0, 1 << 40]) < 0.5

        def one(arguments):
            image, offset, flip = arguments
            crop = tf.slice(image, [offset[0], offset[1], 0], [height, width, -1])
            return tf.where(flip, tf.reverse(crop, [1]), crop)

        return tf.map_fn(one, (padded, offsets, flips), fn_output_signature=images.dtype)

    def _create_variables(self) -> None:
        # Made here, outside the Keras layers' name scopes, so that the variables'
        # names are the same for every model of an architecture (compiled functions
        # are shared by variable layout), in the order of the model's layers.
        for layer in layers_of(self._keras):
            kind = layer_kind(layer)
            if kind in ("dense", "conv2d"):
                self._kernel_and_mask(self._keys[id(layer)], tuple(layer.kernel.shape),
                                      self._kernel_initializer(layer))
                if layer.use_bias:
                    self._bias(self._keys[id(layer)], int(layer.bias.shape[0]),
                               self._bias_initializer(layer))
            elif kind == "bn":
                self._bn_variables(layer)
            elif kind == "dropout":
                self.dropout_layer(self._keys[id(layer)], tf.zeros([1]), float(layer.rate), False)

    @contextlib.contextmanager
    def _patched_layers(self) -> Iterator[None]:
        patched = []
        try:
            for layer in layers_of(self._keras):
                kind = layer_kind(layer)
                replacement = {"dense": self._dense_call, "conv2d": self._conv_call,
                               "bn": self._bn_call, "dropout": self._dropout_call}.get(kind)
                if replacement is not None:
                    # An instance attribute shadows the class's call for this call only.
                    object.__setattr__(layer, "call", _bound(replacement, layer))
                    patched.append(layer)
            yield
        finally:
            for layer in patched:
                object.__delattr__(layer, "call")

    def _kernel_initializer(self, layer: keras.layers.Layer) -> Callable:
        if self._use_keras_weights:
            value = np.asarray(layer.kernel.numpy(), np.float32)
            return lambda shape, dtype=None: value
        return layer.kernel_initializer

    def _bias_initializer(self, layer: keras.layers.Layer) -> Callable:
        if self._use_keras_weights:
            value = np.asarray(layer.bias.numpy(), np.float32)
            return lambda shape, dtype=None: value
        initializer = layer.bias_initializer
        return lambda shape, dtype=None: np.asarray(initializer(shape), np.float32)

    def _dense_call(self, layer: keras.layers.Dense, inputs: tf.Tensor, **_: Any) -> tf.Tensor:
        name = self._keys[id(layer)]
        kernel = self._kernel_and_mask(name, tuple(layer.kernel.shape),
                                       self._kernel_initializer(layer))
        matmul = self._matmul_overrides.get(name)
        if matmul is not None and inputs.shape.rank == 2:
            outputs = matmul(inputs)
        else:
            outputs = keras.ops.matmul(inputs, kernel)
        if layer.use_bias:
            outputs = outputs + self._bias(name, int(layer.units), self._bias_initializer(layer))
        return outputs if layer.activation is None else layer.activation(outputs)

    def _conv_call(self, layer: keras.layers.Conv2D, inputs: tf.Tensor, **_: Any) -> tf.Tensor:
        name = self._keys[id(layer)]
        if layer.data_format != "channels_last":
            raise ValueError(f"Conv2D layer {name!r} is channels_first; the adapter takes "
                             "channels_last (the Keras default).")
        kernel = self._kernel_and_mask(name, tuple(layer.kernel.shape),
                                       self._kernel_initializer(layer))
        outputs = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            outputs = outputs + self._bias(name, int(layer.filters),
                                           self._bias_initializer(layer))
        return outputs if layer.activation is None else layer.activation(outputs)

    def _bn_variables(self, layer: keras.layers.BatchNormalization) -> Dict[str, tf.Variable]:
        name = self._keys[id(layer)]
        if name in self._bn:
            return self._bn[name]
        if self._built:
            raise ValueError(f"batch normalization {name!r} appeared after the network was "
                             "built; the model must call the same layers every time.")
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        size = int(layer.moving_mean.shape[0])
        defaults = {"gamma": layer.gamma_initializer, "beta": layer.beta_initializer,
                    "moving_mean": layer.moving_mean_initializer,
                    "moving_variance": layer.moving_variance_initializer}
        variables = {}
        with tf.init_scope():
            for part in BN_PARTS:
                if part in _BN_TRAINABLE and getattr(layer, part, None) is None:
                    continue  # center=False or scale=False
                key = bn_key(name, part)
                if key in self._given_masks:
                    raise ValueError(f"masks hold {key!r}: batch normalization values are "
                                     "never pruned; give masks for kernels (and biases) only.")
                preset = self._presets.get(key)
                if preset is not None:
                    if tuple(np.shape(preset)) != (size,):
                        raise ValueError(f"preset {key!r} has shape {np.shape(preset)}; "
                                         f"it must be ({size},).")
                    value = np.asarray(preset, np.float32)
                elif self._use_keras_weights:
                    value = np.asarray(getattr(layer, part).numpy(), np.float32)
                else:
                    value = np.asarray(defaults[part]((size,)), np.float32)
                variables[part] = tf.Variable(value, trainable=part in _BN_TRAINABLE,
                                              name=f"{name}_{part}")
        self._bn[name] = variables
        self._bn_settings[name] = (axis, float(layer.momentum), float(layer.epsilon))
        return variables

    def _bn_call(self, layer: keras.layers.BatchNormalization, inputs: tf.Tensor,
                 training: Optional[bool] = None, **_: Any) -> tf.Tensor:
        variables = self._bn_variables(layer)
        axis, momentum, epsilon = self._bn_settings[self._keys[id(layer)]]
        rank = inputs.shape.rank
        axis = axis % rank
        reduce_axes = [a for a in range(rank) if a != axis]
        shape = [1] * rank
        shape[axis] = -1
        if training and layer.trainable:
            mean, variance = tf.nn.moments(inputs, reduce_axes)
            # The moving statistics follow Keras: m <- m * momentum + batch * (1 - momentum).
            variables["moving_mean"].assign(
                variables["moving_mean"] * momentum + mean * (1.0 - momentum))
            variables["moving_variance"].assign(
                variables["moving_variance"] * momentum + variance * (1.0 - momentum))
        else:
            mean, variance = variables["moving_mean"], variables["moving_variance"]
        gamma, beta = variables.get("gamma"), variables.get("beta")
        return tf.nn.batch_normalization(
            inputs, tf.reshape(mean, shape), tf.reshape(variance, shape),
            None if beta is None else tf.reshape(beta, shape),
            None if gamma is None else tf.reshape(gamma, shape), epsilon)

    def _dropout_call(self, layer: keras.layers.Dropout, inputs: tf.Tensor,
                      training: Optional[bool] = False, **_: Any) -> tf.Tensor:
        return self.dropout_layer(self._keys[id(layer)], inputs, float(layer.rate), bool(training))

    # -- Values beyond kernels and biases ---------------------------------------

    def _check_all_used(self) -> None:
        known = (set(self._kernels) | {bias_key(name) for name in self._biases}
                 | {bn_key(name, part) for name, parts in self._bn.items() for part in parts})
        for kind, given in (("preset", self._presets), ("mask", self._given_masks)):
            unknown = sorted(set(given) - known)
            if unknown:
                raise ValueError(
                    f"{kind}s given for {unknown}, which the Keras model does not have; "
                    f"its prunable layers are {list(self._layer_names)}.")

    @property
    def batch_norm_variables(self) -> Dict[str, tf.Variable]:
        """bn_key(layer, part) -> variable of every BatchNormalization value."""
        self._require_built()
        return {bn_key(name, part): variable for name, parts in self._bn.items()
                for part, variable in parts.items()}

    def get_current_weights(self, include_biases: bool = False) -> Dict[str, np.ndarray]:
        """Effective kernels, and on request every other value.

        Effective kernels; with include_biases also the biases and every
        BatchNormalization value (gamma, beta, moving statistics), so that saved
        networks and rewind points hold the whole network.

        Args:
          include_biases: also return the biases and the BatchNormalization values.
        """
        weights = super().get_current_weights(include_biases)
        if include_biases:
            weights.update({key: variable.numpy()
                            for key, variable in self.batch_norm_variables.items()})
        return weights

    def population_refusal(self) -> Optional[str]:
        """Why a population (trainer.train_population) cannot train this model, or None."""
        if self._built and self._bn:
            return ("a population cannot train a Keras model with batch normalization (its "
                    "moving statistics are not stacked); train its runs one at a time "
                    "(population size 1).")
        return None

    @contextlib.contextmanager
    def overriding(self, weights: Optional[Mapping[str, tf.Tensor]] = None,
                   matmuls: Optional[Mapping[str, Callable[[tf.Tensor], tf.Tensor]]] = None
                   ) -> Iterator["KerasModel"]:
        """As ModelBase.overriding, refusing weight overrides with batch normalization.

        Weight overrides (stacked populations) are refused for a model with batch
        normalization, whose statistics they cannot stack.

        Args:
          weights: as in ModelBase.overriding (refused with batch normalization).
          matmuls: as in ModelBase.overriding.

        Yields:
          The model itself, computing with the overrides until the block ends.

        Raises:
          ValueError: weight overrides for a model with batch normalization, or overrides
            the network does not have.
        """
        if weights and self._bn:
            raise ValueError("a population cannot train a Keras model with batch "
                             "normalization (its moving statistics are not stacked); "
                             "train its trials one at a time (population size 1).")
        with super().overriding(weights, matmuls):
            yield self

    # -- Loss and accuracy --------------------------------------------------------

    def loss(self, outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Mean cross-entropy with label smoothing, plus L2 in training.

        Mean cross-entropy (of logits, or of probabilities for a softmax output),
        with label smoothing; in training, plus the L2 term of weight_decay.

        Args:
          outputs: [batch, classes] outputs of forward (logits, or probabilities for a
            softmax output layer).
          labels: [batch] integer class ids.
        """
        classes = int(outputs.shape[-1])
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), classes)
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
            one_hot, outputs, from_logits=not self._probabilities,
            label_smoothing=self._label_smoothing))
        if self._weight_decay and self._training_trace:
            # Traced right after a training forward(): evaluation losses stay plain.
            squares = tf.add_n([tf.reduce_sum(tf.square(self._effective(name)))
                                for name in self._layer_names])
            loss = loss + 0.5 * self._weight_decay * squares
        return loss

    def _effective(self, name: str) -> tf.Tensor:
        if name in self._weight_overrides:
            return self._weight_overrides[name]
        return self.effective_kernel(name)

    def accuracy(self, outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Fraction of examples whose largest output is the label.

        Args:
          outputs: [batch, classes] outputs of forward.
          labels: [batch] integer class ids.
        """
        predictions = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)),
                                      tf.float32))

    def to_keras(self) -> keras.Model:
        """A plain Keras model of this architecture holding this model's current values.

        The values are the effective kernels (pruned weights exactly 0), biases and batch
        normalization values. It needs nothing of this library to load or predict.

        A subclassed model is copied through its get_config/from_config, so it
        exports only when those rebuild it (and loads only where its class is
        registered: keras.saving.register_keras_serializable).

        Raises:
          ValueError: a subclassed Keras model that its config cannot rebuild.
        """
        self._require_built()
        try:
            clone = keras.models.clone_model(self._keras)
        except Exception as error:  # noqa: BLE001 - Keras raises several kinds
            raise ValueError(
                f"the Keras model ({type(self._keras).__name__}) cannot be copied for "
                "export: a subclassed model is rebuilt from its get_config(), which does "
                "not rebuild this one. Write it as a functional or Sequential model (which "
                "export needs no code to load), or give the subclass get_config() and "
                "from_config() that rebuild it and register it with "
                "keras.saving.register_keras_serializable.") from error
        weights = self.get_current_weights(include_biases=True)
        for original, copied in zip(layers_of(self._keras), layers_of(clone)):
            key, kind = self._keys[id(original)], layer_kind(original)
            if kind in ("dense", "conv2d"):
                values = [weights[key]] + ([weights[bias_key(key)]] if original.use_bias else [])
                copied.set_weights(values)
            elif kind == "bn":
                copied.set_weights([weights[bn_key(key, part)] for part in BN_PARTS
                                    if bn_key(key, part) in weights])
        return clone

    def describe(self) -> Dict[str, Any]:
        """JSON facts of the model (its architecture), for records."""
        try:
            return json.loads(self._keras.to_json())
        except Exception:  # noqa: BLE001
            return {"class": type(self._keras).__name__}


def _bound(function: Callable, layer: keras.layers.Layer) -> Callable:
    def call(*args, **kwargs):
        return function(layer, *args, **kwargs)
    return call


def _renamed(value: Any, names: Dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value
