"""The learning-rate schedule of the modern recipes: linear warm-up, then piecewise constant.

``PiecewiseWarmup(base, boundaries, factor, warmup)`` is a Keras
LearningRateSchedule of the optimizer's step: ``base * factor**k`` after the
k-th boundary (iterations), and ``base * (step + 1) / warmup`` for the first
``warmup`` steps. ``offset`` is the iteration the optimizer's step 0 is: a
level rewound to iteration K trains from K, so its schedule starts at K. It
describes itself (get_config), so runs with the same
schedule share compiled functions and runs with different ones do not.
"""

from typing import Any, Dict, Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="lottery_ticket")
class PiecewiseWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up over `warmup` steps, then `base` multiplied by `factor` at each boundary.

    Args:
      base: the learning rate after warm-up and before the first boundary.
      boundaries: increasing optimizer steps (iterations) at which the rate drops.
      factor: what the rate is multiplied by at each boundary (0.1: 10x drops).
      warmup: steps of linear warm-up (0: none).
      offset: the iteration at which the optimizer starts (its step 0); the
        schedule is read at step + offset.
    """

    def __init__(self, base: float, boundaries: Sequence[int] = (), factor: float = 0.1,
                 warmup: int = 0, offset: int = 0):
        self.base = float(base)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)
        self.warmup = int(warmup)
        self.offset = int(offset)

    def __call__(self, step: Any) -> tf.Tensor:
        step = tf.cast(step, tf.float32) + float(self.offset)
        drops = tf.zeros([], tf.float32)
        for boundary in self.boundaries:
            drops += tf.cast(step >= boundary, tf.float32)
        rate = self.base * tf.pow(self.factor, drops)
        if self.warmup:
            rate *= tf.minimum(1.0, (step + 1.0) / float(self.warmup))
        return rate

    def get_config(self) -> Dict[str, Any]:
        """The constructor's arguments, so that Keras can save and rebuild the schedule."""
        return {"base": self.base, "boundaries": list(self.boundaries),
                "factor": self.factor, "warmup": self.warmup,
                "offset": self.offset}
