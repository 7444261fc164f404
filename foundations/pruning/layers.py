"""Layer order, units and the checks of masks and weights that every rule shares."""

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from lottery_ticket.foundations.registry import closest

Arrays = Mapping[str, np.ndarray]


def layer_order(names: Sequence[str]) -> List[str]:
    """`names` in natural order: digits compare as numbers (layer2 before layer10).

    Args:
      names: layer names.
    """
    def key(name: str) -> Tuple:
        # re.split with a group alternates text and digits, so keys compare part by part.
        return tuple(int(part) if index % 2 else part
                     for index, part in enumerate(re.split(r"(\d+)", name)))
    return sorted(names, key=key)


def ordered(names: Sequence[str], order: Optional[Sequence[str]]) -> List[str]:
    """`names` in layer order: `order`'s, or the natural order of the names.

    Args:
      names: layer names.
      order: the model's layer order; None: the names' natural order.

    Raises:
      ValueError: `order` leaves out one of `names`.
    """
    if order is None:
        return layer_order(list(names))
    missing = [name for name in names if name not in order]
    if missing:
        raise ValueError(f"order {list(order)} leaves out layer(s) {missing}; give every "
                         "layer in the model's order (e.g. order=model.layer_names).")
    return [name for name in order if name in names]


def output_layer(masks: Arrays, order: Optional[Sequence[str]] = None) -> str:
    """The network's last layer (in `order`, or the names' natural order).

    Args:
      masks: layer -> mask (the names are used).
      order: the model's layer order; None: the names' natural order.
    """
    return ordered(list(masks), order)[-1]


def rate_groups(percents: Mapping[str, float], order: Optional[Sequence[str]] = None,
                output: Optional[str] = None) -> List[List[str]]:
    """The default pools of global selection.

    The layers that share a rate, except the output layer, which is always pruned on its own
    at its own rate.

    Pools and the layers in them are in layer order, e.g. LeNet's percents
    give [['layer0', 'layer1'], ['layer2']], and Conv-2's (convolutions and
    output at 10%, fc at 20%) [['conv0', 'conv1'], ['fc0', 'fc1'], ['output']].

    Args:
      percents: layer name -> rate.
      order: the layer order; default the names' natural order.
      output: the network's output layer (see output_layer), if known.
    """
    pools: Dict[Any, List[str]] = {}
    for name in ordered(list(percents), order):
        pools.setdefault(name if name == output else float(percents[name]), []).append(name)
    return list(pools.values())


def next_layers(names: Sequence[str], order: Optional[Sequence[str]] = None
                ) -> Dict[str, Optional[str]]:
    """layer -> the layer after it (None for the last), in layer order.

    Args:
      names: layer names.
      order: the model's layer order; None: the names' natural order.
    """
    names = ordered(list(names), order)
    return {name: (names[i + 1] if i + 1 < len(names) else None)
            for i, name in enumerate(names)}


def unit_inputs(name: str, units: int, next_name: str, next_shape: Tuple[int, ...]
                ) -> np.ndarray:
    """Which unit of `name` feeds each input of the next layer (its kernel's axis -2).

    A next layer with as many inputs as `name` has units reads them directly
    (dense after dense, conv after conv). A dense layer after a flattened conv
    output of `units` channels reads H*W*units inputs, channels last (NHWC),
    so input i comes from filter i % units.

    Args:
      name: the layer whose units are removed.
      units: its number of units.
      next_name: the next layer's name (for the message).
      next_shape: the next layer's kernel shape.

    Raises:
      ValueError: the shapes fit neither case (the next layer is not the one
        after `name`: pass the model's layer order).
    """
    inputs = next_shape[-2] if len(next_shape) >= 2 else None
    if inputs == units:
        return np.arange(units)
    if inputs and len(next_shape) == 2 and inputs % units == 0:
        return np.arange(inputs) % units
    raise ValueError(
        f"layer {name!r} has {units} units, but the layer after it, {next_name!r} (kernel "
        f"shape {tuple(next_shape)}), does not take them as inputs: the layer order is "
        "not the model's. Pass order=model.layer_names.")


def unit_norms(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """L2 norm of each unit's (last axis) surviving incoming weights (float64).

    Args:
      weights: a layer's kernel (units on the last axis).
      mask: its mask.
    """
    kept = np.asarray(weights, dtype=np.float64) * np.asarray(mask, dtype=np.float64)
    return np.sqrt(np.sum(np.square(kept.reshape(-1, kept.shape[-1])), axis=0))


def input_norms(weights: np.ndarray, mask: np.ndarray, feeding: np.ndarray,
                units: int) -> np.ndarray:
    """L2 norm, per unit of the previous layer, of the surviving weights it feeds.

    Args:
      weights: the next layer's kernel (inputs on axis -2).
      mask: its mask.
      feeding: per input of that kernel, the unit that feeds it (see unit_inputs).
      units: the number of units of the previous layer.
    """
    kept = np.asarray(weights, dtype=np.float64) * np.asarray(mask, dtype=np.float64)
    by_input = np.moveaxis(kept, -2, 0).reshape(kept.shape[-2], -1)
    return np.sqrt(np.bincount(feeding, weights=np.sum(np.square(by_input), axis=1),
                               minlength=units))


def surviving_units(mask: np.ndarray) -> np.ndarray:
    """Boolean per unit (last axis): whether any of its incoming weights survives.

    Args:
      mask: a layer's mask (units on the last axis).
    """
    mask = np.asarray(mask)
    return mask.reshape(-1, mask.shape[-1]).any(axis=0)


def check_shapes(name: str, mask: np.ndarray, weights: np.ndarray) -> None:
    """Raises ValueError if a layer's mask and weights differ in shape.

    Args:
      name: the layer's name (for the message).
      mask: its mask.
      weights: its weights.

    Raises:
      ValueError: naming the layer and both shapes.
    """
    mask_shape, weight_shape = np.shape(mask), np.shape(weights)
    if mask_shape != weight_shape:
        raise ValueError(
            f"layer {name!r}: mask shape {mask_shape} differs from weight "
            f"shape {weight_shape}.")


def check_layers(percents: Mapping[str, float], masks: Arrays, final_weights: Arrays) -> None:
    """Checks the masks and final weights of the layers to prune.

    Every layer of `percents` has a mask and final weights of one shape, and every
    mask holds only 0 and 1.

    Args:
      percents: layer -> rate of the layers to prune.
      masks: layer -> mask.
      final_weights: layer -> final weights.

    Raises:
      ValueError: naming the layer (and the closest layer with a mask).
    """
    for name in percents:
        if name not in masks:
            guess = closest(name, masks)
            hint = f" Did you mean {guess!r}?" if guess else ""
            raise ValueError(
                f"pruning percent given for layer {name!r}, which has no mask.{hint} "
                f"Layers with masks: {sorted(masks)}.")
        if name not in final_weights:
            raise ValueError(
                f"layer {name!r} has no final weights to rank; layers with "
                f"weights: {sorted(final_weights)}.")
        check_shapes(name, masks[name], final_weights[name])
    for name, mask in masks.items():
        values = np.asarray(mask)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"the mask of layer {name!r} holds values other than 0 and 1 "
                             f"({np.unique(values[~np.isin(values, (0, 1))])[:3]}...): masks "
                             "mark surviving weights with 1 and pruned ones with 0.")


def copy_masks(masks: Arrays) -> Dict[str, np.ndarray]:
    """float32 copies of `masks`.

    Args:
      masks: layer -> mask.
    """
    return {name: np.asarray(mask, dtype=np.float32).copy() for name, mask in masks.items()}
