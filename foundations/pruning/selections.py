"""Selections: how many go and among which weights, given their scores.

A selection is a class registered in ``SELECTIONS``. It says which scores it
ranks by (``per``: weight or unit), checks what it is given, removes the
lowest-scoring survivors (``select``), and knows its counts in advance
(``oneshot_rates``: the rates that prune in one step to what iterative pruning
keeps at level k).
"""

import inspect
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from lottery_ticket.foundations.pruning import layers as layers_lib
from lottery_ticket.foundations.pruning.rates import count_to_prune
from lottery_ticket.foundations.registry import Registry

Arrays = Mapping[str, np.ndarray]
Pools = List[List[str]]


def alive_scores(name: str, mask: np.ndarray, scores: np.ndarray):
    """Flat indices of the surviving weights and their scores, in index order.

    Args:
      name: the layer's name (for the message).
      mask: its 0/1 mask.
      scores: its scores (the mask's shape).

    Raises:
      ValueError: a surviving weight's score is not finite.
    """
    alive = np.flatnonzero(mask)
    values = scores.reshape(-1)[alive]
    if not np.all(np.isfinite(values)):
        raise ValueError(f"layer {name!r}: the scores of its surviving weights include NaN "
                         "or infinity (the final weights are not finite?); a diverged run "
                         "cannot be pruned.")
    return alive, values


def survivors_after(percent: float, surviving: int, level: int) -> int:
    """What `level` iterative steps of `percent` leave of `surviving`.

    Args:
      percent: the per-level rate.
      surviving: the weights (or units) surviving at level 0.
      level: the number of iterative steps.
    """
    for _ in range(int(level)):
        surviving -= count_to_prune(percent, surviving)
    return surviving


def rate_leaving(surviving: int, left: int) -> float:
    """A rate whose single count_to_prune on `surviving` removes surviving - left.

    (surviving - left) / surviving is within rounding of an integer once
    multiplied back, and count_to_prune rounds to the nearest, so it is exact.

    Args:
      surviving: the weights (or units) that survive now.
      left: how many of them should survive the step.
    """
    return (surviving - left) / surviving if surviving else 0.0


class Selection:
    """Base of selections.

    A subclass sets `per` and defines select(); pools() and count() give one-shot pruning
    its counts.
    """

    # Which scores it ranks by: "weight" (WEIGHT_SCORES) or "unit" (UNIT_SCORES).
    per: str = "weight"

    def check(self, percents: Mapping[str, float], masks: Arrays, final_weights: Arrays,
              order: Optional[Sequence[str]]) -> None:
        """Checks that this selection can prune these layers.

        Raises ValueError for what this selection cannot prune (beyond the checks
        every rule makes: known layers, shapes, 0/1 masks).

        Args:
          percents: layer -> rate.
          masks: every layer's 0/1 mask.
          final_weights: every layer's final weights.
          order: the model's layer order (None: the names' natural order).
        """

    def scored_layers(self, percents: Mapping[str, float]) -> List[str]:
        """The layers whose scores select() reads.

        Args:
          percents: layer -> rate.
        """
        return list(percents)

    def select(self, percents: Mapping[str, float], masks: Arrays, scores: Arrays,
               order: Optional[Sequence[str]] = None,
               pools: Optional[Pools] = None) -> Dict[str, np.ndarray]:
        """The new float32 masks.

        Args:
          percents: layer -> rate.
          masks: every layer's 0/1 mask; layers not in `percents` are copied.
          scores: layer -> scores of scored_layers(percents).
          order: the model's layer order (default the names' natural order).
          pools: the pools pools() gave (one-shot pruning fixes them from the
            per-level rates); default pools(percents, masks, order).
        """
        raise NotImplementedError(f"{type(self).__name__} must define select().")

    def pools(self, percents: Mapping[str, float], masks: Arrays,
              order: Optional[Sequence[str]] = None) -> Pools:
        """Groups of layers pruned under one count: each layer alone by default.

        Args:
          percents: layer -> rate.
          masks: every layer's 0/1 mask.
          order: the model's layer order (None: the names' natural order).
        """
        return [[name] for name in percents]

    def count(self, pool: Sequence[str], masks: Arrays) -> int:
        """What a pool's count is of: its surviving weights by default.

        Args:
          pool: the layers of one pool.
          masks: every layer's 0/1 mask.
        """
        return sum(int(np.count_nonzero(masks[name])) for name in pool)

    def oneshot_rates(self, percents: Mapping[str, float], masks: Arrays, level: int,
                      order: Optional[Sequence[str]] = None,
                      pools: Optional[Pools] = None) -> Dict[str, float]:
        """Rates that prune `masks` in one step to what `level` iterative steps keep.

        Iterative pruning at rate p takes count_to_prune(p, s) of the s survivors
        of a pool at each level; the counts depend on nothing else, so the
        survivors at level k are known in advance, and one step at the returned
        rate removes exactly the difference.

        Args:
          percents: layer -> the per-level rate of iterative pruning.
          masks: every layer's 0/1 mask before the one step (level 0's).
          level: how many iterative levels the one step stands for.
          order: the model's layer order (None: the names' natural order).
          pools: the pools to use; default pools(percents, masks, order).

        Returns:
          layer -> fraction in [0, 1]; the layers of a pool share one.

        Raises:
          ValueError: a negative level.
        """
        if int(level) < 0:
            raise ValueError(f"level must be >= 0, got {level}.")
        rates = {}
        for pool in (pools if pools is not None else self.pools(percents, masks, order)):
            surviving = self.count(pool, masks)
            left = survivors_after(percents[pool[0]], surviving, level)
            rates.update({name: rate_leaving(surviving, left) for name in pool})
        return rates

    def get_config(self) -> Dict[str, Any]:
        """The selection's settings, JSON-ready (what from_config takes)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Selection":
        """The selection with the settings get_config reported.

        Args:
          config: a dict get_config returned.
        """
        return cls(**dict(config))


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
    new_masks = layers_lib.copy_masks(masks)
    for name, percent in percents.items():
        mask = new_masks[name].reshape(-1)
        alive, values = alive_scores(name, mask, np.asarray(scores[name]))
        count = count_to_prune(percent, alive.size)
        if count:
            mask[alive[np.argsort(values, kind="stable")[:count]]] = 0.0
    return new_masks


class Layerwise(Selection):
    """Each layer loses count_to_prune(p, its surviving weights): the paper's."""

    def select(self, percents: Mapping[str, float], masks: Arrays, scores: Arrays,
               order: Optional[Sequence[str]] = None,
               pools: Optional[Pools] = None) -> Dict[str, np.ndarray]:
        return select_layerwise(percents, masks, scores)


def check_groups(percents: Mapping[str, float], groups: Sequence[Sequence[str]]) -> None:
    """Checks that `groups` partition the layers into pools of one rate each.

    Raises ValueError unless `groups` partition the layers of `percents` into
    pools of one rate each.

    Args:
      percents: layer -> rate.
      groups: the pools, each a list of layer names.

    Raises:
      ValueError: an empty group, a layer without a rate, in two groups or in none, or a
        group of different rates.
    """
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
        groups = layers_lib.rate_groups(percents, order, layers_lib.output_layer(masks, order))
    else:
        check_groups(percents, groups)
    new_masks = layers_lib.copy_masks(masks)
    for group in groups:
        members = layers_lib.ordered(list(group), order)
        alive, values = zip(*(alive_scores(name, new_masks[name], np.asarray(scores[name]))
                              for name in members))
        count = count_to_prune(percents[members[0]], sum(a.size for a in alive))
        chosen = np.argsort(np.concatenate(values), kind="stable")[:count]
        starts = np.cumsum([0] + [a.size for a in alive])
        for position, name in enumerate(members):
            mine = chosen[(chosen >= starts[position]) & (chosen < starts[position + 1])]
            new_masks[name].reshape(-1)[alive[position][mine - starts[position]]] = 0.0
    return new_masks


class Global(Selection):
    """Pools of layers lose count_to_prune(p, the pool's survivors) under one threshold.

    Args:
      groups: the pools, lists of layer names; default the layers that share a
        rate, with the output layer alone (rate_groups).
    """

    def __init__(self, groups: Optional[Sequence[Sequence[str]]] = None):
        # Kept as given (a string among them is refused by check_groups, by name).
        self.groups = None if groups is None else [
            group if isinstance(group, str) else list(group) for group in groups]

    def check(self, percents: Mapping[str, float], masks: Arrays, final_weights: Arrays,
              order: Optional[Sequence[str]]) -> None:
        if self.groups is not None:
            check_groups(percents, self.groups)

    def pools(self, percents: Mapping[str, float], masks: Arrays,
              order: Optional[Sequence[str]] = None) -> Pools:
        if self.groups is not None:
            return self.groups
        return layers_lib.rate_groups(percents, order, layers_lib.output_layer(masks, order))

    def select(self, percents: Mapping[str, float], masks: Arrays, scores: Arrays,
               order: Optional[Sequence[str]] = None,
               pools: Optional[Pools] = None) -> Dict[str, np.ndarray]:
        return select_global(percents, masks, scores,
                             pools if pools is not None else self.groups, order)

    def get_config(self):
        return {"groups": self.groups}


def check_unit_layers(percents: Mapping[str, float], masks: Arrays, final_weights: Arrays,
                      following: Mapping[str, Optional[str]]) -> None:
    """Checks that unit pruning can prune each layer of `percents`.

    Raises ValueError for a layer unit pruning cannot prune: no kernel, the last
    layer at a rate above 0, or a next layer that does not take its units.

    Args:
      percents: layer -> rate.
      masks: every layer's 0/1 mask.
      final_weights: every layer's final weights.
      following: layer -> the next layer (None for the last; see next_layers).

    Raises:
      ValueError: naming the layer and why.
    """
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
        layers_lib.check_shapes(after, masks[after], final_weights[after])
        layers_lib.unit_inputs(name, np.shape(masks[name])[-1], after, np.shape(masks[after]))


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

    Raises:
      ValueError: a surviving unit's score is not finite.
    """
    following = layers_lib.next_layers(list(masks)) if following is None else following
    new_masks = layers_lib.copy_masks(masks)
    for name, percent in percents.items():
        mask = np.asarray(masks[name])
        units = mask.shape[-1]
        alive = np.flatnonzero(layers_lib.surviving_units(mask))
        values = np.asarray(scores[name], dtype=np.float64)[alive]
        if not np.all(np.isfinite(values)):
            raise ValueError(f"layer {name!r}: the scores of its surviving units include "
                             "NaN or infinity; a diverged run cannot be pruned.")
        removed = alive[np.argsort(values, kind="stable")[:count_to_prune(percent,
                                                                          alive.size)]]
        new_masks[name].reshape(-1, units)[:, removed] = 0.0
        after = following.get(name)
        if prune_next and after is not None and removed.size:
            feeding = layers_lib.unit_inputs(name, units, after, np.shape(masks[after]))
            np.moveaxis(new_masks[after], -2, 0)[np.isin(feeding, removed)] = 0.0
    return new_masks


class Unit(Selection):
    """Unit selection: removes whole units.

    Whole units (a dense kernel's output column, a conv kernel's filter): each
    layer loses count_to_prune(p, its surviving units).

    Args:
      prune_next: also remove a removed unit's outgoing weights (the next
        layer's matching inputs).
    """
    per = "unit"

    def __init__(self, prune_next: bool = True):
        self.prune_next = bool(prune_next)

    def check(self, percents: Mapping[str, float], masks: Arrays, final_weights: Arrays,
              order: Optional[Sequence[str]]) -> None:
        check_unit_layers(percents, masks, final_weights,
                          layers_lib.next_layers(list(masks), order))

    def scored_layers(self, percents: Mapping[str, float]) -> List[str]:
        return [name for name, percent in percents.items() if float(percent) > 0]

    def select(self, percents: Mapping[str, float], masks: Arrays, scores: Arrays,
               order: Optional[Sequence[str]] = None,
               pools: Optional[Pools] = None) -> Dict[str, np.ndarray]:
        pruned = self.scored_layers(percents)
        return select_units({name: percents[name] for name in pruned}, masks, scores,
                            layers_lib.next_layers(list(masks), order), self.prune_next)

    def count(self, pool: Sequence[str], masks: Arrays) -> int:
        return sum(int(np.count_nonzero(layers_lib.surviving_units(np.asarray(masks[name]))))
                   for name in pool)

    def get_config(self):
        return {"prune_next": self.prune_next}


SELECTIONS: Registry[Any] = Registry("selection")
# Exact round(p * surviving) per layer, ties by index: the paper's, and the default.
SELECTIONS.register("layerwise", Layerwise)
# The layers that share a rate form one pool under one threshold.
SELECTIONS.register("global", Global)
# Whole units (kernel columns, conv filters) and the next layer's matching inputs.
SELECTIONS.register("unit", Unit)


def make_selection(name: str, groups: Optional[Sequence[Sequence[str]]] = None,
                   prune_next: bool = True) -> Selection:
    """The selection registered as `name`, given the options it takes.

    Args:
      name: a name in SELECTIONS.
      groups: global selection's pools (None: the layers sharing a rate).
      prune_next: unit selection also removes a removed unit's outgoing weights.

    Raises:
      ValueError: an unknown name (naming the closest), or groups for a
        selection without pools.
    """
    cls = SELECTIONS.get(name)
    accepted = inspect.signature(cls).parameters
    options: Dict[str, Any] = {}
    if groups is not None:
        if "groups" not in accepted:
            raise ValueError("groups are for global selection; pass selection='global'.")
        options["groups"] = groups
    if "prune_next" in accepted:
        options["prune_next"] = prune_next
    return cls(**options)
