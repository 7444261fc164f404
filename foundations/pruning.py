"""Magnitude pruning, as in the lottery ticket experiment.

Each pruning step removes, in every named layer, a fixed fraction of the
weights that are still alive: the ones with the smallest final magnitude.
"""

from typing import Dict, Mapping

import numpy as np


def _check_layers(percents: Mapping[str, float], masks: Mapping[str, np.ndarray],
                  final_weights: Mapping[str, np.ndarray]) -> None:
    for name, percent in percents.items():
        if name not in masks:
            raise ValueError(
                f"pruning percent given for layer {name!r}, which has no mask; "
                f"layers with masks: {sorted(masks)}.")
        if name not in final_weights:
            raise ValueError(
                f"layer {name!r} has no final weights to rank; layers with "
                f"weights: {sorted(final_weights)}.")
        if not 0.0 <= float(percent) <= 1.0:
            raise ValueError(
                f"pruning percent for layer {name!r} is {percent}; it is a "
                "fraction in [0, 1] (0.2 prunes 20% of the surviving weights).")
        mask_shape = np.shape(masks[name])
        weight_shape = np.shape(final_weights[name])
        if mask_shape != weight_shape:
            raise ValueError(
                f"layer {name!r}: mask shape {mask_shape} differs from weight "
                f"shape {weight_shape}.")


def count_to_prune(percent: float, surviving: int) -> int:
    """How many of `surviving` weights a step of `percent` prunes.

    round(percent * surviving), with halves rounded up, so the count is exact
    and does not depend on floating-point sorting (the original codebase pruned
    one weight too many by taking a percentile).
    """
    return int(np.floor(float(percent) * surviving + 0.5))


def prune_by_percent(percents: Mapping[str, float], masks: Mapping[str, np.ndarray],
                     final_weights: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Prunes the smallest-magnitude surviving weights of each layer.

    Args:
      percents: layer name -> fraction in [0, 1] of that layer's surviving
        weights to prune. Layers not named keep their masks unchanged.
      masks: layer name -> 0/1 array; 1 marks a surviving weight.
      final_weights: layer name -> weights at the end of training.

    Returns:
      New masks (float32 0/1 arrays) for every layer in `masks`. In a pruned
      layer exactly count_to_prune(p, surviving) more weights are 0. A pruned
      weight is never revived, and ties in magnitude are broken by flat index
      (the lower index is pruned first), so the result is deterministic.

    Raises:
      ValueError: a percent outside [0, 1], a layer without a mask or final
        weights, or mismatched shapes.
    """
    _check_layers(percents, masks, final_weights)
    new_masks = {name: np.asarray(mask, dtype=np.float32).copy()
                 for name, mask in masks.items()}
    for name, percent in percents.items():
        mask = new_masks[name].reshape(-1)
        alive = np.flatnonzero(mask)
        count = count_to_prune(percent, alive.size)
        if count == 0:
            continue
        magnitudes = np.abs(np.asarray(final_weights[name], dtype=np.float64).reshape(-1))
        # A stable sort of the alive weights keeps equal magnitudes in index order.
        order = np.argsort(magnitudes[alive], kind="stable")
        mask[alive[order[:count]]] = 0.0
    return new_masks
