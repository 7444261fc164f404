"""magnitude_at_init: ``|w|`` of the initial weights (level 0's, before any training).

The baseline of pruning at initialization: what magnitude pruning would remove
if it could not wait for training. At level 0 of a prune-at-init run the
weights being pruned are the initial ones, so it ranks as ``magnitude`` does.
"""

from typing import Dict

import numpy as np

from lottery_ticket.foundations.pruning.scores import WEIGHT_SCORES, Score


class MagnitudeAtInit(Score):
    """``|w|`` of the context's initial weights; low goes first.

    Raises (when called):
      ValueError: the context holds no initial weights.
    """

    def __call__(self, context, layers, seed) -> Dict[str, np.ndarray]:
        context.require("initial")
        return {name: np.abs(np.asarray(context.initial[name], np.float64))
                for name in layers}


WEIGHT_SCORES.register("magnitude_at_init", MagnitudeAtInit)
