"""snip: ``|w * dL/dw|``, the loss's sensitivity to each weight (SNIP, Lee et al. 2019),
on the first training batches, at the level's final weights by default.

A score that reads the model and the data: one class, and one register line.
"""

from typing import Any, Dict

import numpy as np

from lottery_ticket.foundations.pruning.scores import WEIGHT_SCORES, Score


class Snip(Score):
    """``|w * dL/dw|`` averaged over training batches; low goes first.

    Args:
      batches: how many training batches (from iteration 0, in training's order)
        the gradient is averaged over.
      weights: which weights the model holds: 'final' (this level's trained
        weights), 'initial' or 'rewind'.

    Raises:
      ValueError: `batches` is not a whole number >= 1.
    """

    def __init__(self, batches: int = 1, weights: str = "final"):
        if isinstance(batches, bool) or int(batches) < 1:
            raise ValueError(f"snip batches={batches!r}: give a whole number >= 1.")
        self.batches, self.weights = int(batches), str(weights)

    def __call__(self, context, layers, seed) -> Dict[str, np.ndarray]:
        context.require("model", "data")
        values = context.weights(self.weights)
        gradients = context.gradients(context.train_batches(self.batches),
                                      weights=self.weights)
        return {name: np.abs(np.asarray(values[name], np.float64) * gradients[name])
                for name in layers}

    def get_config(self) -> Dict[str, Any]:
        return {"batches": self.batches, "weights": self.weights}


WEIGHT_SCORES.register("snip", Snip)
