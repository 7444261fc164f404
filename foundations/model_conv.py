"""Conv-2, Conv-4 and Conv-6 (Frankle & Carbin, section 3), with optional dropout.

Each is a stack of stages of two 3x3 convolutions (SAME padding, ReLU) followed
by a 2x2 max-pool, then two fully-connected ReLU layers of 256 units and a
10-way output layer:

    conv2: 64, 64, pool                                   -> 256, 256, 10
    conv4: 64, 64, pool, 128, 128, pool                   -> 256, 256, 10
    conv6: 64, 64, pool, 128, 128, pool, 256, 256, pool   -> 256, 256, 10

Layers are named conv0, conv1, ... (in order), fc0, fc1 and ``output``, so the
paper's per-level rates read {'conv0': 0.1, ..., 'fc0': 0.2, 'fc1': 0.2,
'output': 0.1}. Kernels start from Glorot normal, biases at 0. Dropout
(section 5) acts on the outputs of fc0 and fc1 during training only.
"""

from typing import Hashable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import save_restore
# The plain data of the architectures, re-exported: this is where users look for it.
from lottery_ticket.foundations.conv_architectures import (
    ARCHITECTURES, DENSE_UNITS, OUTPUT_LAYER, Stages, conv_layer_names,
    paper_prune_percents, stages_of)
from lottery_ticket.foundations.model_base import Initializer, ModelBase

__all__ = ["ARCHITECTURES", "DENSE_UNITS", "OUTPUT_LAYER", "Stages", "ModelConv",
           "conv_layer_names", "paper_prune_percents"]


class ModelConv(ModelBase):
    """A VGG-style conv net: stages of 3x3 convolutions and 2x2 max-pools, then dense layers.

    Args:
      architecture: 'conv2', 'conv4', 'conv6', or the stages' filter counts,
        e.g. ((64, 64), (128, 128)).
      dense_units: sizes of the fully-connected hidden layers (fc0, fc1, ...).
      outputs: size of the output layer (classes).
      dropout: fraction of each fully-connected hidden layer's outputs dropped
        during training (0: none); evaluation never drops.
      kernel_initializer: for kernels without presets (default Glorot normal).
      presets: as in ModelBase.
      masks: as in ModelBase.
      seed: as in ModelBase.

    Raises:
      ValueError: an unknown architecture, sizes that are not positive, a dropout outside
        [0, 1), or presets or masks that are not finite or not 0/1.
    """

    # A whole 10,000-image split at once held about 5.5 GB of activations for
    # Conv-2 on 28x28 images; chunks of 1,000 hold a tenth of that.
    evaluation_chunk = 1000

    def __init__(self, architecture: Union[str, Sequence[Sequence[int]]] = "conv2",
                 dense_units: Sequence[int] = DENSE_UNITS, outputs: int = 10,
                 dropout: float = 0.0, kernel_initializer: Initializer = "glorot_normal",
                 presets: save_restore.NetworkLike = None,
                 masks: save_restore.NetworkLike = None, seed: Optional[int] = None):
        self._stages = stages_of(architecture)
        self._dense_units = tuple(int(units) for units in dense_units)
        self._outputs = int(outputs)
        if self._outputs < 1 or any(units < 1 for units in self._dense_units):
            raise ValueError(f"dense_units {tuple(dense_units)} and outputs {outputs} must "
                             "be positive.")
        self._dropout = float(dropout)
        if not 0.0 <= self._dropout < 1.0:
            raise ValueError(f"dropout is {dropout}; it is the fraction of activations "
                             "dropped in training, in [0, 1) (0.5 in the paper's section 5).")
        self._kernel_initializer = kernel_initializer
        super().__init__(presets=presets, masks=masks, seed=seed, name="model_conv")

    @property
    def dropout(self) -> float:
        """The dropout rate of the fully-connected hidden layers."""
        return self._dropout

    def trace_key(self) -> Hashable:
        """What decides the computation: stages, dense sizes, outputs and dropout.

        The stages, dense sizes, outputs and dropout rate: all that decides the
        computation (the initializer only sets initial values)."""
        return (self._stages, self._dense_units, self._outputs, self._dropout)

    def forward(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[batch, height, width, channels] images -> [batch, outputs] logits.

        Args:
          inputs: [batch, height, width, channels] images.
          training: True while training (dropout drops); False for evaluation.

        Raises:
          ValueError: inputs that are not [batch, height, width, channels].
        """
        if inputs.shape.rank != 4:
            raise ValueError(
                f"ModelConv takes images [batch, height, width, channels], got shape "
                f"{inputs.shape}; read the data with flatten=False (--flatten=False).")
        x = inputs
        index = 0
        for stage in self._stages:
            for filters in stage:
                x = self.conv2d_layer(f"conv{index}", x, filters, 3, padding="SAME",
                                      activation="relu",
                                      kernel_initializer=self._kernel_initializer)
                index += 1
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
        for position, units in enumerate(self._dense_units):
            x = self.dense_layer(f"fc{position}", x, units, "relu",
                                 kernel_initializer=self._kernel_initializer)
            x = self.dropout_layer(f"fc{position}", x, self._dropout, training)
        return self.dense_layer(OUTPUT_LAYER, x, self._outputs,
                                kernel_initializer=self._kernel_initializer)
