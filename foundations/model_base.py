"""ModelBase: a tf.Module whose layers integrate masks and presets.

Subclasses describe their network in ``forward(inputs, training)`` with
``self.dense_layer`` and ``self.conv2d_layer``. The first call creates the
variables (eagerly, also when it happens while a tf.function is traced); later
calls reuse them. For each layer:

* a preset (``presets[name]``) sets the kernel's initial value exactly;
* a mask (``masks[name]``, 0/1) makes the effective kernel ``kernel * mask``.
  The mask is applied in the forward pass, so the gradient at a pruned
  position is exactly 0 and the effective weight there is exactly 0 under any
  optimizer; the raw kernel also starts at 0 there, so even decoupled weight
  decay leaves it at 0.

Biases start at 0 (or at ``bias_initializer``). As an option they take presets
and masks too, under the key ``"{layer}.bias"`` (``bias_key(layer)``) in the same
dicts: a masked bias is applied as ``bias * mask``, so a pruned unit's bias is
exactly 0. Without such keys biases are unmasked, as before.

``dropout_layer`` drops activations during training only, statelessly (see
it); the loss and accuracy are softmax cross-entropy over integer class ids
unless a subclass sets others (see ``loss``). The helpers layers are built
from live in `model_parts` and are re-exported here.
"""

import contextlib
from typing import Callable, Dict, Hashable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import save_restore
# The parts networks are built from, re-exported: their import path is this module.
from lottery_ticket.foundations.model_parts import (  # noqa: F401
    BIAS_SUFFIX, DROPOUT_STEP, Activation, Initializer, Size, bias_key, binary_logits,
    check_presets_and_masks, check_shape, derived_seed, dropout, dropout_seed_key, initial_kernel,
    resolve_activation, sigmoid_accuracy, sigmoid_cross_entropy, softmax_accuracy,
    softmax_cross_entropy, unit_bias_masks)


class ModelBase(tf.Module):
    """Base class for networks with masked, preset-initialized layers.

    Args:
      presets: layer name -> initial kernel values (dict or saved directory);
        optionally bias_key(layer) ('{layer}.bias') -> initial bias values.
      masks: layer name -> 0/1 array of the kernel's shape (dict or directory).
        Layers without a mask are dense. Optionally bias_key(layer) -> 0/1
        array [units]: the bias is applied as bias * mask.
      seed: seeds the default initializers; the same seed gives the same
        initial weights. None draws a seed, kept in ``self.seed``.
      name: the tf.Module name.

    The interface training engines, pruning rules and experiments use (never
    the private attributes): ``layer_names``; ``kernel_variables``,
    ``mask_variables``, ``bias_variables``, ``bias_mask_variables`` (layer ->
    tf.Variable, to read or assign state); ``forward``/``__call__``,
    ``loss``, ``accuracy`` and ``evaluation_chunk`` (what a compiled step or
    evaluation computes); ``overriding`` (computing with other weights or
    matmuls: stacked populations, sparse layers); ``trace_key`` (when
    compiled functions may be shared); ``build``, ``set_training_step``,
    ``dropout_seeds``; and the values ``masks``, ``bias_masks``,
    ``presets``, ``biases``, ``get_current_weights(include_biases)``.
    """

    def __init__(self, presets: save_restore.NetworkLike = None,
                 masks: save_restore.NetworkLike = None, seed: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(name=name)
        self._presets = save_restore.standardize(presets) or {}
        self._given_masks = save_restore.standardize(masks) or {}
        check_presets_and_masks(self._presets, self._given_masks)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
        self.seed = int(seed)
        self._kernels: Dict[str, tf.Variable] = {}
        self._biases: Dict[str, tf.Variable] = {}
        self._mask_variables: Dict[str, tf.Variable] = {}
        self._bias_mask_variables: Dict[str, tf.Variable] = {}
        self._dropout_seeds: Dict[str, tf.Variable] = {}
        self._dropout_step: Optional[tf.Variable] = None
        self._layer_names = []
        self._built = False
        # Set only inside overriding(): what forward() uses instead of the variables.
        self._weight_overrides: Mapping[str, tf.Tensor] = {}
        self._matmul_overrides: Mapping[str, Callable[[tf.Tensor], tf.Tensor]] = {}

    # -- To be written by subclasses -------------------------------------------

    def forward(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Computes logits from inputs with dense_layer / conv2d_layer.

        Args:
          inputs: a batch of examples (for the paper's models, [batch, features] or [batch,
            height, width, channels]).
          training: True while training (dropout, if any, drops); False for evaluation.

        Returns:
          The logits, [batch, outputs].
        """
        raise NotImplementedError("subclasses of ModelBase define forward().")

    # The trainer evaluates a split in chunks of this many examples, which bounds
    # the memory of the activations: 10,000 (a whole MNIST test split) suits small
    # networks; a subclass with large activations (convolutions) sets fewer.
    evaluation_chunk: int = 10000

    def trace_key(self) -> Optional[Hashable]:
        """What, besides the layers' shapes and masks, decides forward()'s computation.

        The trainer traces its compiled functions once and reuses them for
        later runs of models of the same class whose trace keys are equal and
        whose variables have the same names and shapes, loading each run's
        values into the variables it traced. Return a hashable of every
        constructor argument that changes the computation (activations,
        dropout rates, strides...), not of values that only set initial weights.
        The default, None, never reuses: always correct, only slower to start.
        """
        return None

    # -- Calling and building -----------------------------------------------------

    def __call__(self, inputs: Union[tf.Tensor, np.ndarray],
                 training: bool = False) -> tf.Tensor:
        """Runs the network; the first call creates its variables."""
        first_call = not self._built
        outputs = self.forward(tf.convert_to_tensor(inputs, dtype=tf.float32), training)
        if first_call:
            self._built = True
            self._check_all_used()
        if (training and self._dropout_step is not None
                and DROPOUT_STEP not in self._weight_overrides):  # else the engine counts
            # After forward() has read it: the next training call draws new patterns.
            self._dropout_step.assign_add(1)
        return outputs

    def build(self, input_shape: Sequence[int]) -> "ModelBase":
        """Creates the variables by running one example of this shape.

        Args:
          input_shape: the shape of one example, without the batch dimension.

        Returns:
          The model itself, built.
        """
        if not self._built:
            self(tf.zeros([1] + [int(d) for d in input_shape], tf.float32))
        return self

    @property
    def built(self) -> bool:
        """Whether the variables exist."""
        return self._built

    def _check_all_used(self) -> None:
        known = set(self._kernels) | {bias_key(name) for name in self._biases}
        for kind, given in (("preset", self._presets), ("mask", self._given_masks)):
            unknown = sorted(set(given) - known)
            if unknown:
                raise ValueError(
                    f"{kind}s given for layers {unknown} that the network does not "
                    f"have; its layers are {list(self._layer_names)} (biases: "
                    f"{sorted(bias_key(name) for name in self._biases)}).")

    @contextlib.contextmanager
    def overriding(self, weights: Optional[Mapping[str, tf.Tensor]] = None,
                   matmuls: Optional[Mapping[str, Callable[[tf.Tensor], tf.Tensor]]] = None
                   ) -> Iterator["ModelBase"]:
        """Within the block, forward() computes with other values than the variables.

        For engines that train the same architecture in another form (a
        population of networks stacked on a leading axis, a layer's surviving
        weights as a sparse vector) while the model keeps describing the
        network. The model must be built.

        Args:
          weights: layer name -> effective kernel, bias_key(layer) -> effective
            bias, dropout_seed_key(layer) -> int64 seed of a dropout layer,
            and DROPOUT_STEP -> int64 step, used as they are (masks are not
            applied to them).
          matmuls: dense layer name -> function inputs -> inputs @ kernel, used
            instead of the layer's matmul (the bias and activation follow).

        Yields:
          The model itself, computing with the overrides until the block ends.

        Raises:
          ValueError: an override names a weight the network does not have.
        """
        self._require_built()
        weights, matmuls = dict(weights or {}), dict(matmuls or {})
        known = (set(self._kernels) | {bias_key(name) for name in self._biases}
                 | {dropout_seed_key(name) for name in self._dropout_seeds} | {DROPOUT_STEP})
        unknown = sorted((set(weights) | set(matmuls)) - known)
        if unknown:
            raise ValueError(f"overrides for {unknown}, which the network does not have.")
        previous = self._weight_overrides, self._matmul_overrides
        self._weight_overrides, self._matmul_overrides = weights, matmuls
        try:
            yield self
        finally:
            self._weight_overrides, self._matmul_overrides = previous

    # -- Layers ---------------------------------------------------------------

    def _kernel_and_mask(self, name: str, shape: Sequence[int],
                         kernel_initializer: Initializer) -> tf.Tensor:
        """Returns the effective kernel of a layer, creating it on first use."""
        if name not in self._kernels:
            if self._built:
                raise ValueError(
                    f"layer {name!r} appeared after the network was built; forward() "
                    "must create the same layers on every call.")
            self._create_kernel(name, shape, kernel_initializer)
        kernel = self._kernels[name]
        if tuple(kernel.shape) != tuple(shape):
            raise ValueError(
                f"layer {name!r} is used with kernel shape {tuple(shape)} but was "
                f"created with {tuple(kernel.shape)}; layer names must be unique.")
        if name in self._weight_overrides:
            return self._weight_overrides[name]
        mask = self._mask_variables.get(name)
        return kernel if mask is None else kernel * mask

    def _create_kernel(self, name: str, shape: Sequence[int],
                       kernel_initializer: Initializer) -> None:
        shape = tuple(int(d) for d in shape)
        mask, preset = self._given_masks.get(name), self._presets.get(name)
        check_shape(f"mask for layer {name!r}", mask, shape, "kernel")
        check_shape(f"preset for layer {name!r}", preset, shape, "kernel")
        # Variables are created outside any function being traced, so a model
        # first called inside tf.function still owns ordinary eager variables.
        with tf.init_scope():
            if preset is not None:
                initial = np.asarray(preset, dtype=np.float32)
            else:
                initial = initial_kernel(self.seed, name, shape, kernel_initializer)
            if mask is not None:
                mask = np.asarray(mask, dtype=np.float32)
                initial = initial * mask
                self._mask_variables[name] = tf.Variable(
                    mask, trainable=False, name=f"{name}_mask")
            self._kernels[name] = tf.Variable(initial, name=f"{name}_kernel")
        self._layer_names.append(name)

    def _bias(self, name: str, size: int, bias_initializer: Optional[Callable]) -> tf.Tensor:
        """The effective bias of a layer (bias * mask), creating it on first use."""
        if name not in self._biases:
            key = bias_key(name)
            preset, mask = self._presets.get(key), self._given_masks.get(key)
            for kind, given in (("preset", preset), ("mask", mask)):
                check_shape(f"{kind} for {key!r}", given, (size,), "bias")
            with tf.init_scope():
                if preset is not None:
                    initial = np.asarray(preset, dtype=np.float32)
                elif bias_initializer is None:
                    initial = np.zeros([size], np.float32)
                else:
                    initial = np.asarray(bias_initializer([size], dtype=tf.float32),
                                         dtype=np.float32)
                if mask is not None:
                    mask = np.asarray(mask, dtype=np.float32)
                    initial = initial * mask
                    self._bias_mask_variables[name] = tf.Variable(
                        mask, trainable=False, name=f"{name}_bias_mask")
                self._biases[name] = tf.Variable(initial, name=f"{name}_bias")
        if bias_key(name) in self._weight_overrides:
            return self._weight_overrides[bias_key(name)]
        return self.effective_bias(name)

    def dense_layer(self, name: str, inputs: tf.Tensor, units: int,
                    activation: Activation = None, use_bias: bool = True,
                    kernel_initializer: Initializer = None,
                    bias_initializer: Optional[Callable] = None) -> tf.Tensor:
        """A fully-connected layer with the layer's mask and preset.

        Args:
          name: the layer's name: the key of its mask, preset and weights.
          inputs: [batch, features] tensor with a static feature size.
          units: output size.
          activation: None, a callable, or a Keras activation name ('relu').
          use_bias: whether to add a bias (masked only if masks hold
            bias_key(name)).
          kernel_initializer: used when there is no preset: a Keras
            initializer (instance or name; unseeded ones get a seed derived
            from the model's seed and the layer's name) or a callable
            (shape, dtype) -> values. Default: Glorot normal.
          bias_initializer: callable (shape, dtype) -> values; default zeros.

        Returns:
          The layer's output tensor.

        Raises:
          ValueError: inputs that are not [batch, features] with a known feature size, or a
            preset or mask of another shape.
        """
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape.rank != 2 or inputs.shape[-1] is None:
            raise ValueError(
                f"dense layer {name!r} needs [batch, features] inputs with a known "
                f"feature size, got shape {inputs.shape}; flatten the inputs first.")
        kernel = self._kernel_and_mask(name, (inputs.shape[-1], units), kernel_initializer)
        matmul = self._matmul_overrides.get(name)
        outputs = tf.matmul(inputs, kernel) if matmul is None else matmul(inputs)
        if use_bias:
            outputs = outputs + self._bias(name, units, bias_initializer)
        activation = resolve_activation(activation)
        return outputs if activation is None else activation(outputs)

    def conv2d_layer(self, name: str, inputs: tf.Tensor, filters: int,
                     kernel_size: Size, strides: Size = 1, padding: str = "SAME",
                     activation: Activation = None, use_bias: bool = True,
                     kernel_initializer: Initializer = None,
                     bias_initializer: Optional[Callable] = None) -> tf.Tensor:
        """A 2-D convolution (NHWC) with the layer's mask and preset.

        The kernel has shape [height, width, in_channels, filters]; masks and
        presets for the layer must have that shape. Other arguments as in
        dense_layer; `kernel_size` and `strides` are ints or pairs.

        Args:
          name: the layer's name: the key of its mask, preset and weights.
          inputs: [batch, height, width, in_channels] tensor with a static channel count.
          filters: the number of output channels.
          kernel_size: the kernel's height and width: an int (square) or a pair.
          strides: the stride: an int or a pair.
          padding: 'SAME' or 'VALID'.
          activation: as in dense_layer.
          use_bias: as in dense_layer.
          kernel_initializer: as in dense_layer (default Glorot normal).
          bias_initializer: as in dense_layer (default zeros).

        Returns:
          The layer's output tensor, [batch, height', width', filters].

        Raises:
          ValueError: inputs that are not [batch, height, width, channels] with a known
            channel count, or a preset or mask of another shape.
        """
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape.rank != 4 or inputs.shape[-1] is None:
            raise ValueError(
                f"conv layer {name!r} needs [batch, height, width, channels] inputs "
                f"with a known channel count, got shape {inputs.shape}.")
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        shape = (kernel_size[0], kernel_size[1], inputs.shape[-1], filters)
        kernel = self._kernel_and_mask(name, shape, kernel_initializer)
        outputs = tf.nn.conv2d(inputs, kernel, strides=strides, padding=padding)
        if use_bias:
            outputs = outputs + self._bias(name, filters, bias_initializer)
        activation = resolve_activation(activation)
        return outputs if activation is None else activation(outputs)

    def dropout_layer(self, name: str, inputs: tf.Tensor, rate: float,
                      training: bool) -> tf.Tensor:
        """Inverted dropout during training; the identity at evaluation or rate 0.

        The pattern of each training call is drawn statelessly from this
        layer's seed (derived from the model's seed and `name`) and the
        model's training-call counter, both model variables: the same seeds
        give the same patterns, and a model's numbers do not depend on what
        else ran in the process.

        Args:
          name: the dropout layer's name (unique among dropout layers).
          inputs: the activations to drop.
          rate: fraction dropped, in [0, 1).
          training: whether this is a training call.

        Returns:
          The inputs with the dropped activations 0 and the others scaled by 1 / (1 - rate)
          in training; the inputs themselves otherwise.

        Raises:
          ValueError: a rate outside [0, 1), or a dropout layer that first appears after the
            network was built.
        """
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate {rate} of layer {name!r} must be in [0, 1) "
                             "(0.5 drops half the activations; 0 turns dropout off).")
        if rate == 0.0:
            return inputs
        if name not in self._dropout_seeds:
            if self._built:
                raise ValueError(
                    f"dropout layer {name!r} appeared after the network was built; "
                    "forward() must create the same layers on every call.")
            with tf.init_scope():
                if self._dropout_step is None:
                    self._dropout_step = tf.Variable(
                        tf.constant(0, tf.int64), trainable=False, name="dropout_step")
                self._dropout_seeds[name] = tf.Variable(
                    tf.constant(derived_seed(self.seed, "dropout:" + name), tf.int64),
                    trainable=False, name=f"{name}_dropout_seed")
        if not training:
            return inputs
        return dropout(
            inputs, rate,
            self._weight_overrides.get(dropout_seed_key(name), self._dropout_seeds[name]),
            self._weight_overrides.get(DROPOUT_STEP, self._dropout_step))

    def set_training_step(self, step: int) -> None:
        """Sets the counter of training calls that dropout patterns are drawn from.

        The trainer sets it to a run's first iteration (0, or K for a run
        rewound to iteration K, which then drops what level 0 dropped from K
        on). No effect on a model without dropout.

        Args:
          step: the iteration the next training call is (the run's first iteration).
        """
        if self._dropout_step is not None:
            self._dropout_step.assign(int(step))

    # -- Reading the network back -------------------------------------------------

    def _require_built(self) -> None:
        if not self._built:
            raise RuntimeError(
                "the network has no variables yet: call model.build(input_shape) "
                "or run it on a batch first.")

    @property
    def layer_names(self) -> List[str]:
        """Names of the masked layers, in the order forward() creates them."""
        return list(self._layer_names)

    # -- The declared interface for engines, pruning rules and experiments --------
    # Training engines and pruning rules read and write a model's state through
    # these variables only, never through its private attributes.

    @property
    def kernel_variables(self) -> Dict[str, tf.Variable]:
        """layer name -> the kernel variable (unmasked values), in layer order."""
        self._require_built()
        return {name: self._kernels[name] for name in self._layer_names}

    @property
    def mask_variables(self) -> Dict[str, tf.Variable]:
        """layer name -> the kernel's 0/1 mask variable, for the layers that have one."""
        self._require_built()
        return dict(self._mask_variables)

    @property
    def bias_variables(self) -> Dict[str, tf.Variable]:
        """layer name -> the bias variable (unmasked values), for layers with a bias."""
        self._require_built()
        return dict(self._biases)

    @property
    def bias_mask_variables(self) -> Dict[str, tf.Variable]:
        """layer name -> the bias's 0/1 mask variable, for biases given a mask."""
        self._require_built()
        return dict(self._bias_mask_variables)

    @property
    def weights(self) -> Dict[str, np.ndarray]:
        """Effective kernels (kernel * mask) as a dict layer name -> array."""
        return self.get_current_weights()

    def get_current_weights(self, include_biases: bool = False) -> Dict[str, np.ndarray]:
        """Effective kernels (kernel * mask) as a dict layer name -> array.

        Args:
          include_biases: also give each layer's effective bias (bias * mask)
            under bias_key(layer), e.g. to pass as presets that reset the
            biases with the kernels.
        """
        self._require_built()
        weights = {name: self.effective_kernel(name).numpy() for name in self._layer_names}
        if include_biases:
            weights.update({bias_key(name): value for name, value in self.biases.items()})
        return weights

    def effective_kernel(self, name: str) -> tf.Tensor:
        """The kernel of one layer with its mask applied.

        Args:
          name: the layer's name.
        """
        mask = self._mask_variables.get(name)
        kernel = self._kernels[name]
        return tf.convert_to_tensor(kernel) if mask is None else kernel * mask

    def effective_bias(self, name: str) -> tf.Tensor:
        """The bias of one layer with its mask (if it has one) applied.

        Args:
          name: the layer's name.
        """
        mask = self._bias_mask_variables.get(name)
        bias = self._biases[name]
        return tf.convert_to_tensor(bias) if mask is None else bias * mask

    @property
    def biases(self) -> Dict[str, np.ndarray]:
        """Effective biases (bias * mask) as a dict layer name -> array."""
        self._require_built()
        return {name: self.effective_bias(name).numpy() for name in self._biases}

    @property
    def bias_masks(self) -> Dict[str, np.ndarray]:
        """The bias masks the model was given, keyed bias_key(layer); empty if none.

        They are not part of ``masks`` (whose entries are kernels, what
        pruning and the saved masks/ hold): pass both to rebuild the model,
        ``masks={**model.masks, **model.bias_masks}``.
        """
        self._require_built()
        return {bias_key(name): mask.numpy()
                for name, mask in self._bias_mask_variables.items()}

    @property
    def masks(self) -> Dict[str, np.ndarray]:
        """Masks of every layer (all ones for a layer trained without one)."""
        self._require_built()
        return {name: (self._mask_variables[name].numpy() if name in self._mask_variables
                       else np.ones(self._kernels[name].shape, np.float32))
                for name in self._layer_names}

    @property
    def dropout_seeds(self) -> Dict[str, int]:
        """Each dropout layer's seed (fixed by the model's seed and the layer's name)."""
        self._require_built()
        return {name: int(seed.numpy()) for name, seed in self._dropout_seeds.items()}

    @property
    def presets(self) -> Dict[str, np.ndarray]:
        """The presets the model was given."""
        return dict(self._presets)

    # -- Loss and accuracy --------------------------------------------------------
    # The trainer calls model.loss(outputs, labels) and model.accuracy(outputs,
    # labels) on forward()'s outputs and a batch of labels in the data set's
    # dtype. A subclass with another kind of output replaces both, as functions
    # of (outputs, labels) -> scalar tensor; for one sigmoid output:
    #     loss = staticmethod(sigmoid_cross_entropy)
    #     accuracy = staticmethod(sigmoid_accuracy)

    @staticmethod
    def loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Mean softmax cross-entropy; labels are integer class ids.

        Override in a subclass for another loss (see sigmoid_cross_entropy).

        Args:
          logits: [batch, classes] outputs of forward.
          labels: [batch] integer class ids.

        Returns:
          A scalar tensor.
        """
        return softmax_cross_entropy(logits, labels)

    @staticmethod
    def accuracy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Fraction of examples whose largest logit is the label.

        Override in a subclass with `loss` (see sigmoid_accuracy).

        Args:
          logits: [batch, classes] outputs of forward.
          labels: [batch] integer class ids.

        Returns:
          A scalar tensor in [0, 1].
        """
        return softmax_accuracy(logits, labels)
