"""Mask criteria of Zhou et al. 2019 ("Deconstructing lottery tickets"), as weight scores.

Each criterion ranks a layer's weights from its initial weights w_i (the
context's ``initial``: level 0's initialization) and its final weights w_f (the
level's trained weights); the selection keeps the highest. Registered in
``WEIGHT_SCORES`` so ``--prune_scores=NAME`` uses them in lottery trials:

| name | score (kept: high) |
| --- | --- |
| large_final | abs(w_f) (the paper's; equals ``magnitude``) |
| small_final | -abs(w_f) |
| large_init | abs(w_i) |
| large_init_large_final | min(a * abs(w_f), abs(w_i)), a = std(w_i) / std(w_f) |
| magnitude_increase | abs(w_f) - abs(w_i) |
| movement | abs(w_f - w_i) |

``random`` is the existing random score. In large_init_large_final the final
weights are rescaled to the initial weights' spread (the standard deviations
over the layer's surviving weights), as Zhou et al. do, so that "large at both"
does not reduce to one of the two whenever training grows or shrinks weights.
"""

from typing import Any, Callable, Dict, Mapping

import numpy as np

from lottery_ticket.foundations.pruning.scores import WEIGHT_SCORES, Score


def _large_init_large_final(initial: np.ndarray, final: np.ndarray,
                            mask: np.ndarray) -> np.ndarray:
    kept = np.asarray(mask) != 0
    spread_final = float(np.std(final[kept])) if kept.any() else 0.0
    scale = float(np.std(initial[kept])) / spread_final if spread_final > 0 else 1.0
    return np.minimum(scale * np.abs(final), np.abs(initial))


# name -> formula(initial, final, mask) -> scores; float64 arrays of the kernel's shape.
FORMULAS: Mapping[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "large_final": lambda i, f, m: np.abs(f),
    "small_final": lambda i, f, m: -np.abs(f),
    "large_init": lambda i, f, m: np.abs(i),
    "large_init_large_final": _large_init_large_final,
    "magnitude_increase": lambda i, f, m: np.abs(f) - np.abs(i),
    "movement": lambda i, f, m: np.abs(f - i),
}

# The criteria compared by the supermask figure, in Zhou et al.'s order.
CRITERIA = tuple(FORMULAS) + ("random",)


class Criterion(Score):
    """One of Zhou et al.'s mask criteria (FORMULAS); low goes first.

    Args:
      criterion: a name of FORMULAS.

    Raises:
      ValueError: an unknown criterion.
    """

    def __init__(self, criterion: str):
        if criterion not in FORMULAS:
            raise ValueError(f"mask criterion {criterion!r} is not one of "
                             f"{', '.join(FORMULAS)} (or 'random', a score of its own).")
        self.criterion = criterion

    def __call__(self, context, layers, seed) -> Dict[str, np.ndarray]:
        if self.criterion != "large_final":
            context.require("initial")
        formula = FORMULAS[self.criterion]
        result = {}
        for name in layers:
            final = np.asarray(context.final[name], np.float64)
            initial = (final if context.initial is None
                       else np.asarray(context.initial[name], np.float64))
            result[name] = np.asarray(formula(initial, final, context.masks[name]),
                                      np.float64)
        return result

    def get_config(self) -> Dict[str, Any]:
        return {"criterion": self.criterion}


def _criterion_class(name: str) -> type:
    """A Criterion subclass fixed to `name`, so the registry makes it with no settings."""
    def __init__(self, criterion: str = name):
        Criterion.__init__(self, criterion)
    return type(f"Criterion_{name}", (Criterion,), {
        "__init__": __init__, "__doc__": f"Zhou et al.'s {name} mask criterion."})


for _name in FORMULAS:
    if _name not in WEIGHT_SCORES.names():
        WEIGHT_SCORES.register(_name, _criterion_class(_name))
