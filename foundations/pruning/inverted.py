"""inverted: another score negated, so a selection removes its highest first.

The "inverted scores" ablation of Frankle et al. 2021 ("Pruning neural networks
at initialization: why are we missing the mark?"): if a score's ranking
matters, keeping what it would prune should do worse.
"""

from typing import Any, Dict, Mapping, Optional

import numpy as np

from lottery_ticket.foundations.pruning.scores import WEIGHT_SCORES, Score, make_score


class Inverted(Score):
    """-scores of the weight score `scores` (with its `config`): the highest go first.

    Args:
      scores: a name in WEIGHT_SCORES (not 'inverted').
      config: that score's settings (its get_config()).

    Raises:
      ValueError: an unknown score name, or an inverted inverted score.
    """

    def __init__(self, scores: str = "magnitude", config: Optional[Mapping[str, Any]] = None):
        if scores == "inverted":
            raise ValueError("inverted scores of inverted scores are the scores themselves: "
                             "name the score to invert, e.g. Inverted('snip').")
        self.scores, self.config = str(scores), dict(config or {})
        self.inner = make_score(WEIGHT_SCORES, self.scores, self.config)
        self.random = bool(getattr(self.inner, "random", False))
        self.rounds = int(getattr(self.inner, "rounds", 1) or 1)

    def __call__(self, context, layers, seed) -> Dict[str, np.ndarray]:
        return {name: -np.asarray(values, np.float64)
                for name, values in self.inner(context, layers, seed).items()}

    def get_config(self) -> Dict[str, Any]:
        return {"scores": self.scores, "config": self.inner.get_config()}


WEIGHT_SCORES.register("inverted", Inverted)
