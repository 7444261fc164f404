"""Pruning for the lottery ticket experiment: scores rank, a selection removes.

A pruning step is two separate choices:

* **scores** rank what may be removed. Weight scores (``WEIGHT_SCORES``):
  ``magnitude`` (|w| of the final weights, the paper's) and ``random`` (uniform
  draws seeded by ``seed`` and the layer's name). Unit scores (``UNIT_SCORES``,
  for unit pruning): ``input_magnitude`` (L2 norm of a unit's surviving
  incoming weights), ``output_magnitude`` (of its surviving outgoing weights in
  the next layer), ``magnitude_product`` (the two multiplied) and ``random``.
* **selection** decides how many go and among which weights:

  - ``layerwise``: each layer loses count_to_prune(p, its surviving weights)
    of its lowest-scoring survivors (the paper's, and ``prune_by_percent``);
  - ``global``: layers are pooled and each pool loses count_to_prune(p, the
    surviving weights of the whole pool) under one threshold, so a layer whose
    weights score low loses more than p and one whose weights score high
    less. By default the layers that share a rate form one pool: LeNet's
    ``{'layer0': 0.2, 'layer1': 0.2, 'layer2': 0.1}`` prunes 20% of layer0 and
    layer1 together and the output layer on its own at 10% (the follow-up
    literature's global pruning with a separate output rate). ``groups``
    names the pools explicitly instead;
  - ``unit``: removes whole units: a dense kernel's output column or a conv
    kernel's output filter (the last axis), and by default the matching
    input of the next layer; each layer loses count_to_prune(p, its surviving
    units).

Every selection is exact (counts are rounded once, halves up), never revives
a pruned weight, and breaks ties deterministically: by layer order, then by
flat index (by unit index for units), lowest first. Layer order is the
natural order of the layer names (layer2 before layer10) unless ``order``
gives the model's own; it does not depend on the order of the dicts passed
in, so masks read back from disk prune exactly like masks from a model.

``prune`` is the one entry point; ``weight_scores``, ``unit_scores``,
``select_layerwise``, ``select_global`` and ``select_units`` compose the same
steps for other strategies. Random scores are one fixed draw per (seed,
layer): iterating keeps removing the lowest of the same draw, so the same
seed gives the same masks at every level, however the levels are reached.
"""

import re
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from lottery_ticket.foundations.registry import Registry, closest

Arrays = Mapping[str, np.ndarray]
# score(name, weights, mask, seed) -> float64 array of the weights' shape; low goes first.
WeightScore = Callable[[str, np.ndarray, np.ndarray, Optional[int]], np.ndarray]
# score(inputs, outputs, name, units, seed) -> float64 [units]: inputs and outputs are the
# L2 norms of each unit's surviving incoming and outgoing weights (outputs None: no next).
UnitScore = Callable[[np.ndarray, Optional[np.ndarray], str, int, Optional[int]], np.ndarray]

SELECTIONS = ("layerwise", "global", "unit")


def count_to_prune(percent: float, surviving: int) -> int:
    """How many of `surviving` weights a step of `percent` prunes.

    round(percent * surviving), with halves rounded up, so the count is exact
    and does not depend on floating-point sorting (the original codebase pruned
    one weight too many by taking a percentile).
    """
    return int(np.floor(float(percent) * surviving + 0.5))


def layer_order(names: Sequence[str]) -> List[str]:
    """`names` in natural order: digits compare as numbers (layer2 before layer10)."""
    def key(name: str) -> Tuple:
        # re.split with a group alternates text and digits, so keys compare part by part.
        return tuple(int(part) if index % 2 else part
                     for index, part in enumerate(re.split(r"(\d+)", name)))
    return sorted(names, key=key)


def _random(name: str, shape: Tuple[int, ...], seed: Optional[int]) -> np.ndarray:
    # Keyed by the layer's name, not its position, so a layer's draw does not change
    # when other layers are added, left out or listed in another order.
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
    return rng.random(shape)


def _magnitude(name: str, weights: np.ndarray, mask: np.ndarray,
               seed: Optional[int]) -> np.ndarray:
    return np.abs(np.asarray(weights, dtype=np.float64))


def _random_weights(name: str, weights: np.ndarray, mask: np.ndarray,
                    seed: Optional[int]) -> np.ndarray:
    return _random(name, np.shape(weights), seed)


def _input_magnitude(inputs, outputs, name, units, seed) -> np.ndarray:
    return inputs


def _output_magnitude(inputs, outputs, name, units, seed) -> np.ndarray:
    return outputs


def _magnitude_product(inputs, outputs, name, units, seed) -> np.ndarray:
    return inputs * outputs


def _random_units(inputs, outputs, name, units, seed) -> np.ndarray:
    return _random(name, (units,), seed)


WEIGHT_SCORES: Registry[WeightScore] = Registry("weight score")
WEIGHT_SCORES.register("magnitude", _magnitude)
WEIGHT_SCORES.register("random", _random_weights)

UNIT_SCORES: Registry[UnitScore] = Registry("unit score")
UNIT_SCORES.register("input_magnitude", _input_magnitude)
UNIT_SCORES.register("output_magnitude", _output_magnitude)
UNIT_SCORES.register("magnitude_product", _magnitude_product)
UNIT_SCORES.register("random", _random_units)
# Scores that read the next layer's weights, so the layer must have one.
_NEEDS_NEXT = {"output_magnitude", "magnitude_product"}
# "magnitude", every selection's default, means a unit's incoming weights' magnitude.
_UNIT_ALIASES = {"magnitude": "input_magnitude"}
RANDOM_SCORES = ("random",)


def score_names() -> List[str]:
    """Every score name any selection accepts (for checking a configuration)."""
    return sorted(set(WEIGHT_SCORES.names()) | set(UNIT_SCORES.names()) | set(_UNIT_ALIASES))


def _check_layers(percents: Mapping[str, float], masks: Arrays, final_weights: Arrays) -> None:
    for name, percent in percents.items():
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
        try:
            # A bool or a string is a slip, not a fraction: True would prune everything.
            value = float("nan") if isinstance(percent, (bool, str)) else float(percent)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"pruning percent for layer {name!r} is {percent}; it is a "
                "fraction in [0, 1] (0.2 prunes 20% of the surviving weights).")
        _check_shapes(name, masks[name], final_weights[name])
    for name, mask in masks.items():
        values = np.asarray(mask)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"the mask of layer {name!r} holds values other than 0 and 1 "
                             f"({np.unique(values[~np.isin(values, (0, 1))])[:3]}...): masks "
                             "mark surviving weights with 1 and pruned ones with 0.")


def _check_shapes(name: str, mask: np.ndarray, weights: np.ndarray) -> None:
    mask_shape, weight_shape = np.shape(mask), np.shape(weights)
    if mask_shape != weight_shape:
        raise ValueError(
            f"layer {name!r}: mask shape {mask_shape} differs from weight "
            f"shape {weight_shape}.")


def _check_seed(scores: str, seed: Optional[int]) -> None:
    if scores not in RANDOM_SCORES:
        return
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or seed < 0:
        raise ValueError(f"{scores} scores need a seed, a whole number >= 0 (got {seed!r}), "
                         "so that the masks can be made again: pass seed=N "
                         "(--prune_seed=N).")


def _copy_masks(masks: Arrays) -> Dict[str, np.ndarray]:
    return {name: np.asarray(mask, dtype=np.float32).copy() for name, mask in masks.items()}


def _ordered(names: Sequence[str], order: Optional[Sequence[str]]) -> List[str]:
    """`names` in layer order: `order`'s, or the natural order of the names."""
    if order is None:
        return layer_order(list(names))
    missing = [name for name in names if name not in order]
    if missing:
        raise ValueError(f"order {list(order)} leaves out layer(s) {missing}; give every "
                         "layer in the model's order (e.g. order=model.layer_names).")
    return [name for name in order if name in names]


def weight_scores(layers: Sequence[str], masks: Arrays, final_weights: Arrays,
                  scores: str = "magnitude", seed: Optional[int] = None
                  ) -> Dict[str, np.ndarray]:
    """Scores of every weight of `layers` (float64, the weights' shapes); low goes first.

    Raises:
      ValueError: an unknown score name (naming the closest), or random scores
        without a seed.
    """
    score = WEIGHT_SCORES.get(scores)
    _check_seed(scores, seed)
    return {name: np.asarray(score(name, np.asarray(final_weights[name]), masks[name], seed),
                             dtype=np.float64) for name in layers}


def _alive_scores(name: str, mask: np.ndarray, scores: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Flat indices of the surviving weights and their scores, in index order."""
    alive = np.flatnonzero(mask)
    values = scores.reshape(-1)[alive]
    if not np.all(np.isfinite(values)):
        raise ValueError(f"layer {name!r}: the scores of its surviving weights include NaN "
                         "or infinity (the final weights are not finite?); a diverged run "
                         "cannot be pruned.")
    return alive, values


def select_layerwise(percents: Mapping[str, float], masks: Arrays,
                     scores: Arrays) -> Dict[str, np.ndarray]:
    """Removes, in each layer, count_to_prune(p, surviving) lowest-scoring survivors.

    Args:
      percents: layer name -> fraction in [0, 1] of its surviving weights.
      masks: layer name -> 0/1 array; layers not in `percents` are copied.
      scores: layer name -> scores of the layer's weights (its mask's shape).

    Returns:
      New float32 masks for every layer in `masks`. Ties go to the lower flat
      index (a stable sort).
    """
    new_masks = _copy_masks(masks)
    for name, percent in percents.items():
        mask = new_masks[name].reshape(-1)
        alive, values = _alive_scores(name, mask, np.asarray(scores[name]))
        count = count_to_prune(percent, alive.size)
        if count:
            mask[alive[np.argsort(values, kind="stable")[:count]]] = 0.0
    return new_masks


def output_layer(masks: Arrays, order: Optional[Sequence[str]] = None) -> str:
    """The network's last layer (in `order`, or the names' natural order)."""
    return _ordered(list(masks), order)[-1]


def rate_groups(percents: Mapping[str, float], order: Optional[Sequence[str]] = None,
                output: Optional[str] = None) -> List[List[str]]:
    """The default pools of global selection: the layers that share a rate, except
    the output layer, which is always pruned on its own at its own rate.

    Pools and the layers in them are in layer order, e.g. LeNet's percents
    give [['layer0', 'layer1'], ['layer2']], and Conv-2's (convolutions and
    output at 10%, fc at 20%) [['conv0', 'conv1'], ['fc0', 'fc1'], ['output']].

    Args:
      percents: layer name -> rate.
      order: the layer order; default the names' natural order.
      output: the network's output layer (see output_layer), if known.
    """
    pools: Dict[Any, List[str]] = {}
    for name in _ordered(list(percents), order):
        pools.setdefault(name if name == output else float(percents[name]), []).append(name)
    return list(pools.values())


def _check_groups(percents: Mapping[str, float], groups: Sequence[Sequence[str]]) -> None:
    seen: Dict[str, int] = {}
    for index, group in enumerate(groups):
        if isinstance(group, str) or not group:
            raise ValueError(f"groups[{index}] is {group!r}; each group is a non-empty list "
                             "of layer names, e.g. groups=[['layer0', 'layer1'], ['layer2']].")
        for name in group:
            if name not in percents:
                raise ValueError(f"groups[{index}] names layer {name!r}, which has no "
                                 f"pruning percent; layers with percents: {sorted(percents)}.")
            if name in seen:
                raise ValueError(f"layer {name!r} is in groups[{seen[name]}] and "
                                 f"groups[{index}]; a layer belongs to one group.")
            seen[name] = index
        rates = sorted({float(percents[name]) for name in group})
        if len(rates) > 1:
            raise ValueError(f"groups[{index}] pools layers with different rates {rates}; "
                             "the layers of a group share one rate (one threshold).")
    left = [name for name in percents if name not in seen]
    if left:
        raise ValueError(f"layer(s) {left} have a pruning percent but are in no group; "
                         "put each in a group (a group of one prunes it on its own).")


def select_global(percents: Mapping[str, float], masks: Arrays, scores: Arrays,
                  groups: Optional[Sequence[Sequence[str]]] = None,
                  order: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Removes the lowest-scoring survivors of each pool of layers under one threshold.

    Args:
      percents: layer name -> fraction in [0, 1]; the layers of a pool share it.
      masks: layer name -> 0/1 array; layers not in `percents` are copied.
      scores: layer name -> scores of the layer's weights, comparable across
        layers (raw magnitudes are, as in the literature's global pruning).
      groups: the pools, lists of layer names; default rate_groups: the layers
        that share a rate, with the output layer (the last of `masks`) alone.
      order: the layer order for ties; default the names' natural order.

    Returns:
      New float32 masks. Each pool loses exactly count_to_prune(p, surviving
      weights in the pool); ties go to the earlier layer, then the lower index.

    Raises:
      ValueError: groups that do not partition the layers of `percents`, or
        mix rates.
    """
    if groups is None:
        groups = rate_groups(percents, order, output_layer(masks, order))
    else:
        _check_groups(percents, groups)
    new_masks = _copy_masks(masks)
    for group in groups:
        members = _ordered(list(group), order)
        alive, values = zip(*(_alive_scores(name, new_masks[name], np.asarray(scores[name]))
                              for name in members))
        count = count_to_prune(percents[members[0]], sum(a.size for a in alive))
        chosen = np.argsort(np.concatenate(values), kind="stable")[:count]
        starts = np.cumsum([0] + [a.size for a in alive])
        for position, name in enumerate(members):
            mine = chosen[(chosen >= starts[position]) & (chosen < starts[position + 1])]
            new_masks[name].reshape(-1)[alive[position][mine - starts[position]]] = 0.0
    return new_masks


def next_layers(names: Sequence[str], order: Optional[Sequence[str]] = None
                ) -> Dict[str, Optional[str]]:
    """layer -> the layer after it (None for the last), in layer order."""
    ordered = _ordered(list(names), order)
    return {name: (ordered[i + 1] if i + 1 < len(ordered) else None)
            for i, name in enumerate(ordered)}


def unit_inputs(name: str, units: int, next_name: str, next_shape: Tuple[int, ...]
                ) -> np.ndarray:
    """Which unit of `name` feeds each input of the next layer (its kernel's axis -2).

    A next layer with as many inputs as `name` has units reads them directly
    (dense after dense, conv after conv). A dense layer after a flattened conv
    output of `units` channels reads H*W*units inputs, channels last (NHWC),
    so input i comes from filter i % units.

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


def _unit_norms(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """L2 norm of each unit's (last axis) surviving incoming weights."""
    kept = np.asarray(weights, dtype=np.float64) * np.asarray(mask, dtype=np.float64)
    return np.sqrt(np.sum(np.square(kept.reshape(-1, kept.shape[-1])), axis=0))


def _input_norms(weights: np.ndarray, mask: np.ndarray, feeding: np.ndarray,
                 units: int) -> np.ndarray:
    """L2 norm, per unit of the previous layer, of the surviving weights it feeds."""
    kept = np.asarray(weights, dtype=np.float64) * np.asarray(mask, dtype=np.float64)
    by_input = np.moveaxis(kept, -2, 0).reshape(kept.shape[-2], -1)
    return np.sqrt(np.bincount(feeding, weights=np.sum(np.square(by_input), axis=1),
                               minlength=units))


def surviving_units(mask: np.ndarray) -> np.ndarray:
    """Boolean per unit (last axis): whether any of its incoming weights survives."""
    mask = np.asarray(mask)
    return mask.reshape(-1, mask.shape[-1]).any(axis=0)


def _check_unit_layers(percents: Mapping[str, float], masks: Arrays, final_weights: Arrays,
                       following: Mapping[str, Optional[str]]) -> None:
    for name, percent in percents.items():
        if np.ndim(masks[name]) < 2:
            raise ValueError(f"layer {name!r} has a mask of shape {np.shape(masks[name])}; "
                             "unit pruning needs a kernel (inputs..., units).")
        after = following[name]
        if after is None:
            if float(percent) > 0:
                raise ValueError(
                    f"layer {name!r} is the last layer: its units are the network's "
                    "outputs, which unit pruning does not remove. Leave it out of the "
                    "percents (--prune_percents) or give it 0.")
            continue
        if after not in final_weights:
            raise ValueError(f"layer {after!r}, after {name!r}, has no final weights; "
                             f"unit pruning reads and prunes its inputs too.")
        _check_shapes(after, masks[after], final_weights[after])
        unit_inputs(name, np.shape(masks[name])[-1], after, np.shape(masks[after]))


def unit_scores(layers: Sequence[str], masks: Arrays, final_weights: Arrays,
                scores: str = "input_magnitude", seed: Optional[int] = None,
                following: Optional[Mapping[str, Optional[str]]] = None
                ) -> Dict[str, np.ndarray]:
    """Scores of every unit of `layers` (float64 [units]); low goes first.

    Args:
      layers: the layers to score.
      masks, final_weights: every layer's mask and final weights (the next
        layers' too, for output scores).
      scores: input_magnitude, output_magnitude, magnitude_product or random
        (a name in UNIT_SCORES; "magnitude" means input_magnitude).
      seed: for random scores.
      following: layer -> the next layer; default next_layers(masks).

    Raises:
      ValueError: an unknown score name, random scores without a seed.
    """
    scores = _UNIT_ALIASES.get(scores, scores)
    score = UNIT_SCORES.get(scores)
    _check_seed(scores, seed)
    following = next_layers(list(masks)) if following is None else following
    result = {}
    for name in layers:
        units = np.shape(masks[name])[-1]
        inputs = _unit_norms(final_weights[name], masks[name])
        outputs = None
        after = following.get(name)
        if after is not None:
            feeding = unit_inputs(name, units, after, np.shape(masks[after]))
            outputs = _input_norms(final_weights[after], masks[after], feeding, units)
        elif scores in _NEEDS_NEXT:
            raise ValueError(f"{scores} scores read the weights of the layer after "
                             f"{name!r}, which has none.")
        result[name] = np.asarray(score(inputs, outputs, name, units, seed), dtype=np.float64)
    return result


def select_units(percents: Mapping[str, float], masks: Arrays, scores: Arrays,
                 following: Optional[Mapping[str, Optional[str]]] = None,
                 prune_next: bool = True) -> Dict[str, np.ndarray]:
    """Removes, in each layer, count_to_prune(p, surviving units) lowest-scoring units.

    Args:
      percents: layer name -> fraction in [0, 1] of its surviving units.
      masks: layer name -> 0/1 kernel masks; units are on the last axis.
      scores: layer name -> float [units].
      following: layer -> next layer; default next_layers(masks).
      prune_next: also remove a removed unit's inputs of the next layer
        (its outgoing weights), so the unit's bias cannot leak through.

    Returns:
      New float32 masks. A unit survives while any incoming weight does; a
      removed unit is never counted or chosen again. Ties go to the lower
      unit index. Every choice is made on the masks as given, so the result
      does not depend on the order the layers are visited in.
    """
    following = next_layers(list(masks)) if following is None else following
    new_masks = _copy_masks(masks)
    for name, percent in percents.items():
        mask = np.asarray(masks[name])
        units = mask.shape[-1]
        alive = np.flatnonzero(surviving_units(mask))
        values = np.asarray(scores[name], dtype=np.float64)[alive]
        if not np.all(np.isfinite(values)):
            raise ValueError(f"layer {name!r}: the scores of its surviving units include "
                             "NaN or infinity; a diverged run cannot be pruned.")
        removed = alive[np.argsort(values, kind="stable")[:count_to_prune(percent,
                                                                          alive.size)]]
        new_masks[name].reshape(-1, units)[:, removed] = 0.0
        after = following.get(name)
        if prune_next and after is not None and removed.size:
            feeding = unit_inputs(name, units, after, np.shape(masks[after]))
            np.moveaxis(new_masks[after], -2, 0)[np.isin(feeding, removed)] = 0.0
    return new_masks


def check_strategy(selection: str, scores: str = "magnitude",
                   seed: Optional[int] = None) -> str:
    """Checks a selection and score name (and the seed random scores need).

    Returns:
      The score name as the selection reads it ("magnitude" is
      "input_magnitude" for units).

    Raises:
      ValueError: an unknown selection or score (naming the closest), or
        random scores without a seed.
    """
    if selection not in SELECTIONS:
        guess = closest(selection, SELECTIONS)
        hint = f" Did you mean {guess!r}?" if guess else ""
        raise ValueError(f"unknown selection {selection!r}.{hint} Selections: "
                         f"{', '.join(SELECTIONS)}.")
    if selection == "unit":
        scores = _UNIT_ALIASES.get(scores, scores)
        known = UNIT_SCORES
    else:
        known = WEIGHT_SCORES
    if scores not in known:
        guess = closest(scores, known)
        hint = f" Did you mean {guess!r}?" if guess else ""
        raise ValueError(f"unknown {known.kind} {scores!r} for {selection} selection.{hint} "
                         f"Scores: {', '.join(known.names())}.")
    _check_seed(scores, seed)
    return scores


def prune(percents: Mapping[str, float], masks: Arrays, final_weights: Arrays, *,
          scores: str = "magnitude", selection: str = "layerwise",
          seed: Optional[int] = None, groups: Optional[Sequence[Sequence[str]]] = None,
          order: Optional[Sequence[str]] = None,
          prune_next: bool = True) -> Dict[str, np.ndarray]:
    """One pruning step: the next masks from this level's masks and final weights.

    Args:
      percents: layer name -> fraction in [0, 1] of its surviving weights (of
        its surviving units for unit selection) to prune. Layers not named
        keep their masks.
      masks: layer name -> 0/1 array; 1 marks a surviving weight.
      final_weights: layer name -> weights at the end of training.
      scores: what ranks them: "magnitude" or "random" (WEIGHT_SCORES); for
        unit selection "input_magnitude" (= "magnitude"), "output_magnitude",
        "magnitude_product" or "random" (UNIT_SCORES).
      selection: "layerwise", "global" or "unit" (see the module docstring).
      seed: seeds random scores (required for them; ignored otherwise).
      groups: global selection's pools; default: the layers sharing a rate.
      order: the model's layer order (model.layer_names), for ties and for
        which layer follows which; default the names' natural order.
      prune_next: unit selection also removes a removed unit's outgoing
        weights (the next layer's matching inputs).

    Returns:
      New float32 0/1 masks for every layer in `masks`; no pruned weight is
      revived, and the same arguments always give the same masks.

    Raises:
      ValueError: an unknown layer, a percent outside [0, 1], mismatched
        shapes, an unknown selection or score (naming the closest), random
        scores without a seed, bad groups, or (unit selection) a layer with
        no next layer or one that does not take its units as inputs.

    Example::

        masks = prune({"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}, masks, final,
                      selection="global")
    """
    scores = check_strategy(selection, scores, seed)
    _check_layers(percents, masks, final_weights)
    if order is not None:
        _ordered(list(percents), order)
    if selection == "unit":
        following = next_layers(list(masks), order)
        _check_unit_layers(percents, masks, final_weights, following)
        pruned = [name for name, percent in percents.items() if float(percent) > 0]
        ranked = unit_scores(pruned, masks, final_weights, scores, seed, following)
        return select_units({name: percents[name] for name in pruned}, masks, ranked,
                            following, prune_next)
    ranked = weight_scores(list(percents), masks, final_weights, scores, seed)
    if selection == "global":
        return select_global(percents, masks, ranked, groups, order)
    if groups is not None:
        raise ValueError("groups are for global selection; pass selection='global'.")
    return select_layerwise(percents, masks, ranked)


def prune_by_percent(percents: Mapping[str, float], masks: Mapping[str, np.ndarray],
                     final_weights: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Prunes the smallest-magnitude surviving weights of each layer.

    The paper's strategy: prune(percents, masks, final_weights) with magnitude
    scores and layerwise selection.

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
    return prune(percents, masks, final_weights)
