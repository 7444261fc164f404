"""Pruning rates: the one check of a rate, shared by the configuration and the rules,
and the exact count a rate prunes."""

import math
from typing import Any, Dict, Mapping

import numpy as np

RATE_EXAMPLE = "{'layer0': 0.2, 'layer1': 0.2, 'layer2': 0.1}"


def count_to_prune(percent: float, surviving: int) -> int:
    """How many of `surviving` weights a step of `percent` prunes.

    round(percent * surviving), with halves rounded up, so the count is exact
    and does not depend on floating-point sorting (the original codebase pruned
    one weight too many by taking a percentile).

    Args:
      percent: the fraction pruned.
      surviving: the weights (or units) that survive so far.

    Returns:
      The number to prune, an int in [0, surviving] for percent in [0, 1].
    """
    return int(np.floor(float(percent) * surviving + 0.5))


def check_rate(rate: Any, where: str) -> float:
    """A pruning rate as a float, or a ValueError saying why it is refused and the fix.

    A rate is a fraction in [0, 1) of the surviving weights pruned per level.
    Refused: bools (True would read as 1.0), text, NaN, negatives, and 1 or
    more (a rate of 1 prunes every surviving weight: the layer is empty).

    Args:
      rate: the value given.
      where: how the message names it, e.g. "prune_percents['layer0']".

    Returns:
      float(rate).

    Raises:
      ValueError: naming `where`, the value, the reason and the fix.
    """
    fix = (f"give a fraction below 1, e.g. 0.2 prunes 20% of the surviving weights per "
           f"level (--prune_percents=\"{RATE_EXAMPLE}\"), and leave out a layer to keep it "
           "unpruned")
    value = float("nan")
    if isinstance(rate, (bool, np.bool_)):
        reason = f"a bool is not a rate ({rate!r} would read as {float(rate)})"
    elif isinstance(rate, (str, bytes)):
        reason = "text is not a rate; give the number itself"
    else:
        try:
            value = float(rate)
            reason = ""
        except (TypeError, ValueError):
            reason = "that is not a number"
    if not reason:
        if math.isnan(value):
            reason = "NaN is not a number"
        elif value < 0:
            reason = "a negative rate prunes nothing"
        elif value >= 1:
            reason = ("a rate of 1 or more prunes every surviving weight, which empties "
                      "the layer")
    if reason:
        raise ValueError(f"{where} is {rate!r}; it is a fraction in [0, 1): {reason}. "
                         f"Fix: {fix}.")
    return value


def check_percents(percents: Any, where: str = "prune_percents") -> Dict[str, float]:
    """layer -> rate, each checked by check_rate.

    Args:
      percents: a non-empty mapping layer name -> rate.
      where: how messages name the mapping.

    Returns:
      A new dict str(layer) -> float rate, in the given order.

    Raises:
      ValueError: not a non-empty mapping, or a bad rate (see check_rate).
    """
    if not isinstance(percents, Mapping) or not percents:
        raise ValueError(
            f"{where} {percents!r} must be a non-empty dict layer -> fraction, "
            f"e.g. --prune_percents=\"{RATE_EXAMPLE}\".")
    return {str(layer): check_rate(rate, f"{where}[{layer!r}]")
            for layer, rate in percents.items()}


def check_fraction(rate: Any, where: str) -> float:
    """A computed rate in [0, 1] (one-shot rates may reach 1 on a tiny layer).

    Args:
      rate: the computed rate.
      where: how the message names it.

    Raises:
      ValueError: the rate is outside [0, 1].
    """
    value = float(rate)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where} is {rate!r}; it is a fraction in [0, 1].")
    return value
