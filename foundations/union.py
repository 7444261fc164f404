"""Combining masks: union and intersection of the surviving weights."""

from typing import Dict, Sequence

import numpy as np


def _check_same_layers(masks_list: Sequence[Dict[str, np.ndarray]]) -> None:
    if len(masks_list) == 0:
        raise ValueError("need at least one set of masks to combine.")
    names = set(masks_list[0])
    for index, masks in enumerate(masks_list[1:], start=1):
        if set(masks) != names:
            raise ValueError(
                f"masks {index} have layers {sorted(masks)}, masks 0 have "
                f"{sorted(names)}: only masks of the same layers combine.")
        for name in names:
            if np.shape(masks[name]) != np.shape(masks_list[0][name]):
                raise ValueError(
                    f"layer {name!r}: mask shapes {np.shape(masks_list[0][name])} "
                    f"and {np.shape(masks[name])} differ.")


def _combine(masks_list, more, reduce) -> Dict[str, np.ndarray]:
    if isinstance(masks_list, dict):
        masks_list = [masks_list]
    masks_list = list(masks_list) + list(more)
    _check_same_layers(masks_list)
    return {name: reduce([np.asarray(m[name]) != 0 for m in masks_list]).astype(np.float32)
            for name in masks_list[0]}


def union(masks_list: Sequence[Dict[str, np.ndarray]], *more) -> Dict[str, np.ndarray]:
    """A weight survives if it survives in any of the masks.

    Call as union([m1, m2, ...]) (the form save_restore.standardize's
    combine_fn uses) or union(m1, m2, ...).

    Args:
      masks_list: a sequence of masks (layer -> 0/1 array, the same layers and shapes), or
        the first mask when the others follow as further arguments.

    Returns:
      The combined masks, layer -> float32 0/1 array.
    """
    return _combine(masks_list, more, np.logical_or.reduce)


def intersect(masks_list: Sequence[Dict[str, np.ndarray]], *more) -> Dict[str, np.ndarray]:
    """A weight survives if it survives in all of the masks.

    Args:
      masks_list: a sequence of masks (layer -> 0/1 array, the same layers and shapes), or
        the first mask when the others follow as further arguments.

    Returns:
      The combined masks, layer -> float32 0/1 array.
    """
    return _combine(masks_list, more, np.logical_and.reduce)
