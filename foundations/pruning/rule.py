"""PruningRule: rates, a selection and a score, as one object with its settings."""

import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from lottery_ticket.foundations.pruning import layers as layers_lib
from lottery_ticket.foundations.pruning import scores as scores_lib
from lottery_ticket.foundations.pruning import selections as selections_lib
from lottery_ticket.foundations.pruning.context import Context
from lottery_ticket.foundations.pruning.rates import check_fraction, check_rate, count_to_prune
from lottery_ticket.foundations.registry import closest

Arrays = Mapping[str, np.ndarray]


def accepts_keyword(function: Callable, name: str) -> bool:
    """Whether `function` takes the keyword `name` (or ``**kwargs``).

    Args:
      function: any callable.
      name: the keyword's name.
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return any(p.kind == p.VAR_KEYWORD or (p.name == name and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) for p in parameters)


def accepts_context(function: Callable) -> bool:
    """Whether a pruning function takes a `context` keyword (or ``**kwargs``).

    Args:
      function: a pruning function.
    """
    return accepts_keyword(function, "context")


def call_with_context(function: Callable, masks: Arrays, final_weights: Arrays,
                      context: Context, **options: Any) -> Dict[str, np.ndarray]:
    """``function(masks, final_weights, **options)``, with ``context=context`` if it takes one.

    Args:
      function: a pruning function function(masks, final_weights, ...) -> masks.
      masks: layer -> the current mask.
      final_weights: layer -> the level's final weights.
      context: the level's Context, passed only to a function that accepts it.
    """
    if accepts_context(function):
        options["context"] = context
    return function(masks, final_weights, **options)


def check_strategy(selection: str, scores: str = "magnitude",
                   seed: Optional[int] = None) -> str:
    """Checks a selection and score name (and the seed random scores need).

    Args:
      selection: a selection name (SELECTIONS).
      scores: a score name (WEIGHT_SCORES, or UNIT_SCORES for unit selection).
      seed: the pruning seed (required for random scores).

    Returns:
      The score name as the selection reads it ("magnitude" is
      "input_magnitude" for units).

    Raises:
      ValueError: an unknown selection or score (naming the closest), or
        random scores without a seed.
    """
    if selection not in selections_lib.SELECTIONS:
        guess = closest(selection, selections_lib.SELECTIONS)
        hint = f" Did you mean {guess!r}?" if guess else ""
        builtin = [name for name in ("layerwise", "global", "unit")
                   if name in selections_lib.SELECTIONS]
        listing = builtin + [name for name in selections_lib.SELECTIONS if name not in builtin]
        raise ValueError(f"unknown selection {selection!r}.{hint} Selections: "
                         f"{', '.join(listing)}.")
    if selections_lib.SELECTIONS.get(selection).per == "unit":
        scores = scores_lib.UNIT_ALIASES.get(scores, scores)
        known = scores_lib.UNIT_SCORES
    else:
        known = scores_lib.WEIGHT_SCORES
    if scores not in known:
        guess = closest(scores, known)
        hint = f" Did you mean {guess!r}?" if guess else ""
        # The defaults first, as the selections are listed, then the others.
        first = [name for name in ("magnitude", "random") if name in known]
        listing = first + [name for name in known.names() if name not in first]
        raise ValueError(f"unknown {known.kind} {scores!r} for {selection} selection.{hint} "
                         f"Scores: {', '.join(listing)}.")
    scores_lib.check_seed(scores, seed, scores_lib.is_random(known, scores))
    return scores


class PruningRule:
    """One pruning step as an object: rule(masks, final_weights) -> the next masks.

    Args:
      percents: layer -> rate in [0, 1) of its surviving weights (units, for
        unit selection) pruned per level; layers not named keep their masks.
      selection: a name in SELECTIONS ("layerwise", "global", "unit"), or a
        Selection.
      scores: a name in WEIGHT_SCORES (UNIT_SCORES for unit selection), or a
        Score.
      seed: seeds random scores (required for them).
      order: the model's layer order (model.layer_names); default the names'
        natural order.
      groups: global selection's pools; default the layers sharing a rate.
      prune_next: unit selection also removes a removed unit's outgoing weights.
      oneshot: prune in one step to what iterative pruning keeps at the level
        given to __call__ (the one-shot schedule), instead of one level's step.
      selection_config: the selection's settings, as its get_config reported (used by
        from_config).
      score_config: the score's settings, as its get_config reported (used by from_config).

    Raises:
      ValueError: a bad rate (see check_rate), unknown selection or score, random
        scores without a seed, or groups for a selection without pools.

    Example::

        rule = PruningRule({"layer0": 0.2, "layer1": 0.2, "layer2": 0.1},
                           selection="global")
        masks = rule(masks, final)
        rule.get_config()  # what done.json records; PruningRule.from_config reverses it
    """

    def __init__(self, percents: Mapping[str, float], *,
                 selection: Union[str, selections_lib.Selection] = "layerwise",
                 scores: Union[str, scores_lib.Score] = "magnitude",
                 seed: Optional[int] = None, order: Optional[Sequence[str]] = None,
                 groups: Optional[Sequence[Sequence[str]]] = None, prune_next: bool = True,
                 oneshot: bool = False, selection_config: Optional[Mapping] = None,
                 score_config: Optional[Mapping] = None):
        if isinstance(selection, selections_lib.Selection):
            self.selection_name = _registered_name(selections_lib.SELECTIONS, selection)
            self.selection = selection
        else:
            check_strategy(selection, "magnitude")  # the selection's name, first
            self.selection_name = selection
            self.selection = (
                selections_lib.SELECTIONS.get(selection).from_config(selection_config)
                if selection_config is not None
                else selections_lib.make_selection(selection, groups, prune_next))
        registry = (scores_lib.UNIT_SCORES if self.selection.per == "unit"
                    else scores_lib.WEIGHT_SCORES)
        if isinstance(scores, scores_lib.Score):
            self.scores_name = _registered_name(registry, scores)
            self.score = scores
            scores_lib.check_seed(self.scores_name, seed, scores.random)
        else:
            self.scores_name = check_strategy(self.selection_name, scores, seed)
            self.score = scores_lib.make_score(registry, self.scores_name, score_config)
            # A score's settings may make it random (inverted random scores).
            scores_lib.check_seed(self.scores_name, seed, self.score.random)
        self.percents = {str(name): check_rate(rate, f"pruning percent for layer {name!r}")
                         for name, rate in dict(percents).items()}
        self.seed = None if seed is None else int(seed)
        self.order = None if order is None else list(order)
        self.oneshot = bool(oneshot)

    def __call__(self, masks: Arrays, final_weights: Arrays, level: Optional[int] = None,
                 context: Optional[Context] = None) -> Dict[str, np.ndarray]:
        """The next masks.

        Args:
          masks: layer -> 0/1 mask of the level pruned.
          final_weights: layer -> its weights at the end of training.
          level: the level the new masks are for; required when oneshot.
          context: more for scores to read (initial weights, model, data); by
            default one holding `masks` and `final_weights` only.

        Returns:
          New float32 0/1 masks for every layer in `masks`; no pruned weight is
          revived, and the same arguments always give the same masks.

        Raises:
          ValueError: unknown layers, mismatched shapes, masks other than 0/1,
            what the selection cannot prune, or a one-shot rule without level.
        """
        if context is None:
            context = Context(masks, final_weights, level=level, order=self.order)
        else:
            context = context.replace(masks=masks, final=final_weights,
                                      order=self.order if self.order is not None
                                      else context.order)
        order = context.order
        percents, pools = self.percents, None
        if self.oneshot:
            if level is None:
                raise ValueError("a one-shot rule prunes to a level: call it with level=k.")
            # From the per-level rates, so that one-step rates that happen to coincide
            # never merge two pools.
            pools = self.selection.pools(percents, masks, order)
            percents = {name: check_fraction(rate, f"one-shot rate of layer {name!r}")
                        for name, rate in self.selection.oneshot_rates(
                            percents, masks, level, order, pools).items()}
        layers_lib.check_layers(percents, masks, final_weights)
        if order is not None:
            layers_lib.ordered(list(percents), order)
        self.selection.check(percents, masks, final_weights, order)
        rounds = int(getattr(self.score, "rounds", 1) or 1)
        if rounds <= 1:
            ranked = self.score(context, self.selection.scored_layers(percents), self.seed)
            return self.selection.select(percents, masks, ranked, order, pools)
        return self._iterate(rounds, percents, masks, context, order, pools)

    def _iterate(self, rounds: int, percents: Mapping[str, float], masks: Arrays,
                 context: Context, order: Optional[Sequence[str]],
                 pools: Optional[List[List[str]]]) -> Dict[str, np.ndarray]:
        """The step in `rounds` rounds: each pool's survivors shrink geometrically,
        s0 * (s_end / s0) ** (k / rounds) after round k (the exponential schedule of
        SynFlow, Tanaka et al. 2020), each round ranked by the score of the masks
        the previous one left; the last round leaves exactly the step's count."""
        pools = pools if pools is not None else self.selection.pools(percents, masks, order)
        start = {tuple(pool): self.selection.count(pool, masks) for pool in pools}
        end = {pool: surviving - count_to_prune(percents[pool[0]], surviving)
               for pool, surviving in start.items()}
        current = {name: np.asarray(mask, np.float32) for name, mask in masks.items()}
        for round_ in range(1, rounds + 1):
            rates = {}
            for pool, surviving in start.items():
                target = end[pool] if round_ == rounds else int(np.round(
                    surviving * (end[pool] / surviving) ** (round_ / rounds))) \
                    if surviving else 0
                now = self.selection.count(list(pool), current)
                rates.update({name: selections_lib.rate_leaving(now, min(now, target))
                              for name in pool})
            ranked = self.score(context.replace(masks=current),
                                self.selection.scored_layers(rates), self.seed)
            current = self.selection.select(rates, current, ranked, order, pools)
        return current

    def get_config(self) -> Dict[str, Any]:
        """The rule's settings, JSON-ready: from_config(get_config()) is the same rule."""
        return {"percents": dict(self.percents), "selection": self.selection_name,
                "selection_config": self.selection.get_config(),
                "scores": self.scores_name, "score_config": self.score.get_config(),
                "seed": self.seed, "order": self.order, "oneshot": self.oneshot}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "PruningRule":
        """The rule get_config described.

        Args:
          config: a dict get_config returned (as done.json records it).
        """
        config = dict(config)
        return cls(config.pop("percents"), **config)

    def __repr__(self) -> str:
        return f"PruningRule({self.get_config()!r})"


def _registered_name(registry, entry) -> str:
    for name in registry.names():
        if registry.get(name) is type(entry):
            return name
    raise ValueError(f"{type(entry).__name__} is not registered in {registry.kind}s: "
                     f"register it (e.g. {registry.kind.upper().replace(' ', '_')}S."
                     f"register('name', {type(entry).__name__})) so that runs record it.")


def prune(percents: Mapping[str, float], masks: Arrays, final_weights: Arrays, *,
          scores: str = "magnitude", selection: str = "layerwise",
          seed: Optional[int] = None, groups: Optional[Sequence[Sequence[str]]] = None,
          order: Optional[Sequence[str]] = None, prune_next: bool = True,
          context: Optional[Context] = None) -> Dict[str, np.ndarray]:
    """One pruning step: the next masks from this level's masks and final weights.

    PruningRule(percents, ...)(masks, final_weights, context=context).

    Args:
      percents: layer name -> fraction in [0, 1) of its surviving weights (of
        its surviving units for unit selection) to prune. Layers not named
        keep their masks.
      masks: layer name -> 0/1 array; 1 marks a surviving weight.
      final_weights: layer name -> weights at the end of training.
      scores: what ranks them: "magnitude" or "random" (WEIGHT_SCORES); for
        unit selection "input_magnitude" (= "magnitude"), "output_magnitude",
        "magnitude_product" or "random" (UNIT_SCORES); or a registered score.
      selection: "layerwise", "global" or "unit" (see the package docstring).
      seed: seeds random scores (required for them; ignored otherwise).
      groups: global selection's pools; default: the layers sharing a rate.
      order: the model's layer order (model.layer_names), for ties and for
        which layer follows which; default the names' natural order.
      prune_next: unit selection also removes a removed unit's outgoing
        weights (the next layer's matching inputs).
      context: for scores that read the model, data or gradients.

    Returns:
      New float32 0/1 masks for every layer in `masks`; no pruned weight is
      revived, and the same arguments always give the same masks.

    Raises:
      ValueError: an unknown layer, a percent outside [0, 1), mismatched
        shapes, an unknown selection or score (naming the closest), random
        scores without a seed, bad groups, or (unit selection) a layer with
        no next layer or one that does not take its units as inputs.

    Example::

        masks = prune({"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}, masks, final,
                      selection="global")
    """
    rule = PruningRule(percents, selection=selection, scores=scores, seed=seed, order=order,
                       groups=groups, prune_next=prune_next)
    return rule(masks, final_weights, context=context)


def prune_by_percent(percents: Mapping[str, float], masks: Mapping[str, np.ndarray],
                     final_weights: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Prunes the smallest-magnitude surviving weights of each layer.

    The paper's strategy: prune(percents, masks, final_weights) with magnitude
    scores and layerwise selection.

    Args:
      percents: layer name -> fraction in [0, 1) of that layer's surviving
        weights to prune. Layers not named keep their masks unchanged.
      masks: layer name -> 0/1 array; 1 marks a surviving weight.
      final_weights: layer name -> weights at the end of training.

    Returns:
      New masks (float32 0/1 arrays) for every layer in `masks`. In a pruned
      layer exactly count_to_prune(p, surviving) more weights are 0. A pruned
      weight is never revived, and ties in magnitude are broken by flat index
      (the lower index is pruned first), so the result is deterministic.

    Raises:
      ValueError: a percent outside [0, 1), a layer without a mask or final
        weights, or mismatched shapes.
    """
    return prune(percents, masks, final_weights)
