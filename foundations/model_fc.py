"""A fully-connected network (LeNet-300-100 with the default hyperparameters)."""

from typing import Any, Hashable, Mapping, Optional

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.model_base import ModelBase


class ModelFc(ModelBase):
    """A stack of dense layers named layer0, layer1, ...

    Args:
      hyperparameters: {'layers': [(units, activation), ...]}, activation
        None, a callable or a Keras name ('relu'); optionally
        'kernel_initializer' (default Glorot normal, as in the original).
      presets: as in ModelBase.
      masks: as in ModelBase.
      seed: as in ModelBase.

    Raises:
      ValueError: no 'layers' in `hyperparameters`, or presets or masks that are not finite
        or not 0/1.
    """

    def __init__(self, hyperparameters: Mapping[str, Any],
                 presets: save_restore.NetworkLike = None,
                 masks: save_restore.NetworkLike = None, seed: Optional[int] = None):
        if "layers" not in hyperparameters or not hyperparameters["layers"]:
            raise ValueError(
                "hyperparameters need 'layers': a list of (units, activation), e.g. "
                "[(300, 'relu'), (100, 'relu'), (10, None)].")
        self._layer_specs = [(int(units), activation)
                             for units, activation in hyperparameters["layers"]]
        self._kernel_initializer = hyperparameters.get("kernel_initializer", "glorot_normal")
        super().__init__(presets=presets, masks=masks, seed=seed, name="model_fc")

    def trace_key(self) -> Hashable:
        """The layers' sizes and activations: all that decides the computation."""
        return tuple(self._layer_specs)

    def forward(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Flattens the inputs and applies the dense layers; returns logits.

        Args:
          inputs: [batch, ...] examples, flattened to [batch, features].
          training: unused (a ModelFc has no dropout); part of ModelBase.forward's interface.
        """
        features = int(np.prod(inputs.shape[1:]))
        outputs = tf.reshape(inputs, [-1, features])
        for index, (units, activation) in enumerate(self._layer_specs):
            outputs = self.dense_layer(f"layer{index}", outputs, units, activation,
                                       kernel_initializer=self._kernel_initializer)
        return outputs
