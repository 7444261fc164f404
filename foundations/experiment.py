"""The lottery ticket experiment: train, prune, reset, repeat.

Two schedules share level 0 (the dense network):

* **iterative** (the paper's): level k prunes level k-1's masks using level
  k-1's final weights, resets the survivors and trains again;
* **one-shot** (the paper's Figure 4): level k prunes level 0's masks using
  level 0's final weights straight to the weights iterative pruning keeps at
  level k (``oneshot_pruning``), resets and trains.

Survivors are reset to level 0's initial weights, or to what ``reset_weights``
returns (e.g. level 0's weights at iteration K for late resetting).
"""

import dataclasses
import inspect
import logging
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from lottery_ticket.foundations import pruning
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

SCHEDULES = ("iterative", "oneshot")

Metrics = Dict[str, Dict[str, list]]


@dataclasses.dataclass
class LevelResult:
    """What one pruning level produced."""
    level: int
    masks: Network
    initial: Network  # At levels >= 1: the reset weights with this level's mask applied.
    final: Network
    resumed: bool  # True when read back from a completed run, not trained now.
    # {split: {"iteration": [...], "loss": [...], "accuracy": [...]}} as in
    # metrics.json; None when train_model or completed_level did not give them.
    metrics: Optional[Metrics] = None


def accepts_level(function: Callable) -> bool:
    """Whether a pruning function takes a `level` keyword (or **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return any(p.kind == p.VAR_KEYWORD or (p.name == "level" and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) for p in parameters)


def prune_level(prune_masks: Callable[..., Network], source: LevelResult, level: int,
                tell_level: bool, initial: Network, rewind: Optional[Network],
                make_model: Callable[[int, Optional[Network], Optional[Network]], ModelBase],
                make_dataset: Callable[[], DatasetBase]) -> Network:
    """prune_masks(source.masks, source.final[, level=level][, context=...]).

    A function that accepts `context` gets a pruning.Context: level 0's
    `initial` weights, the `rewind` weights (None unless survivors are reset
    to other weights), and providers of a model (make_model at this level,
    with the weights asked for as presets) and of the training data, called
    only if a score asks.
    """
    options: Dict[str, Any] = {"level": level} if tell_level else {}
    if pruning.accepts_context(prune_masks):
        options["context"] = pruning.Context(
            source.masks, source.final, initial=initial, rewind=rewind, level=level,
            model_fn=lambda weights, masks: make_model(level, weights, masks),
            dataset_fn=make_dataset)
    return prune_masks(source.masks, source.final, **options)


def _levels(iterations: Union[int, Iterable[int]], schedule: str) -> List[int]:
    """The pruning levels after level 0 that a schedule runs, checked."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} is not one of {SCHEDULES}.")
    if isinstance(iterations, (int, np.integer)) and not isinstance(iterations, bool):
        if int(iterations) < 0:
            raise ValueError(f"iterations (pruning levels after level 0) must be >= 0, "
                             f"got {iterations}.")
        return list(range(1, int(iterations) + 1))
    if schedule == "iterative":
        raise ValueError(f"iterations is {iterations!r}: iterative pruning reaches level k "
                         "through every level before it, so pass the number of levels; "
                         "a list of levels is for schedule='oneshot'.")
    levels = list(iterations)
    if not levels or any(isinstance(k, bool) or not isinstance(k, (int, np.integer))
                         or k < 1 for k in levels) or len(set(levels)) != len(levels):
        raise ValueError(f"one-shot levels {iterations!r} must be distinct whole numbers "
                         ">= 1, e.g. [3, 7, 12].")
    return sorted(int(k) for k in levels)


def experiment(make_dataset: Callable[[], DatasetBase],
               make_model: Callable[[int, Optional[Network], Optional[Network]], ModelBase],
               train_model: Callable[[int, DatasetBase, ModelBase], Tuple[Network, Network]],
               prune_masks: Callable[..., Network],
               iterations: Union[int, Sequence[int]],
               presets: Optional[Network] = None,
               completed_level: Optional[Callable[[int], Optional[Tuple]]] = None,
               reset_weights: Optional[Callable[[LevelResult], Network]] = None,
               schedule: str = "iterative",
               ) -> Dict[int, LevelResult]:
    """Runs magnitude pruning with resetting, iteratively or one-shot.

    Level 0 trains the dense network. With schedule 'iterative', each level
    k >= 1 prunes the masks of level k-1 using that level's final weights,
    resets the surviving weights (by default to the level-0 initial values;
    see `reset_weights`), and trains again. With schedule 'oneshot', each
    level k prunes level 0's masks using level 0's final weights, straight to
    level k (`prune_masks` must take `level`; see oneshot_pruning).

    Args:
      make_dataset: returns the dataset for a training run.
      make_model: make_model(level, presets, masks) returns a new model whose
        kernels start at `presets` (masked by `masks`); both None at level 0
        unless `presets` is given.
      train_model: train_model(level, dataset, model) trains and returns
        (initial_weights, final_weights); if what it returns has `metrics`
        (trainer.TrainResult does), they become the level's metrics.
      prune_masks: prune_masks(masks, final_weights) returns the next masks.
        A function that accepts a `level` keyword is also told the level the
        masks are for: prune_masks(masks, final_weights, level=k).
      iterations: iterative: the number of pruning levels after level 0. One-
        shot: that number (levels 1..n), or the levels themselves, e.g.
        [3, 7, 12].
      presets: optional initial weights for level 0.
      completed_level: completed_level(level) returns (initial, final, masks)
        or (initial, final, masks, metrics) of a level that already finished,
        or None. Finished levels are read back instead of retrained, which is
        how an interrupted experiment resumes; asking for more levels than
        exist extends it.
      reset_weights: reset_weights(level_0) returns the weights (layer name ->
        kernel) that the survivors of every level >= 1 are reset to, given
        level 0's LevelResult once it has trained or been read back; for
        example weights saved at iteration K of level 0 for late resetting.
        None resets to level 0's initial weights.
      schedule: 'iterative' or 'oneshot'.

    Returns:
      level -> LevelResult for level 0 and each pruning level.

    Raises:
      ValueError: a bad schedule or levels, or a one-shot schedule with a
        pruning function that does not take `level` (before any training).
      RuntimeError: a model did not start from the weights it was reset to
        (the level-0 initialization by default, or what reset_weights
        returned) with its mask applied; for example make_model ignored its
        presets.
    """
    levels = _levels(iterations, schedule)
    tell_level = accepts_level(prune_masks)
    if schedule == "oneshot" and not tell_level:
        raise ValueError(
            "a one-shot schedule prunes level 0 straight to each level k, so prune_masks "
            "must accept level=k (e.g. experiment.oneshot_pruning(percents)); "
            f"{prune_masks!r} does not.")
    results: Dict[int, LevelResult] = {}
    reset_to: Optional[Network] = presets
    # Level 0 is checked against its presets, which are its initialization.
    reset_source = "the level-0 initialization"
    for level in [0] + levels:
        masks: Optional[Network] = None
        if level > 0:
            source = results[0] if schedule == "oneshot" else results[level - 1]
            masks = prune_level(prune_masks, source, level, tell_level, results[0].initial,
                                reset_to if reset_weights is not None else None,
                                make_model, make_dataset)
        saved = completed_level(level) if completed_level is not None else None
        metrics = None
        if saved is not None:
            initial, final, saved_masks = saved[:3]
            metrics = saved[3] if len(saved) > 3 else None
            if masks is not None and not _same(masks, saved_masks):
                raise ValueError(
                    f"level {level} was saved with masks that differ from the ones "
                    "pruning gives now: the saved experiment was made with other "
                    "settings. Use a new output directory.")
            masks = saved_masks
            logger.info("level %d is already complete; reading it back.", level)
            resumed = True
        else:
            model = make_model(level, reset_to, masks)
            trained = train_model(level, make_dataset(), model)
            initial, final = trained
            metrics = getattr(trained, "metrics", None)
            if masks is None:
                masks = model.masks
            resumed = False
        if reset_to is not None:
            expected = {name: reset_to[name] * masks[name] for name in masks
                        if name in reset_to}
            if not _same(expected, {name: initial[name] for name in expected}, exact=False):
                raise RuntimeError(
                    f"level {level} did not start from {reset_source} with its mask "
                    "applied: make_model must build the model with the presets and "
                    "masks it is given.")
        results[level] = LevelResult(level, masks, initial, final, resumed, metrics)
        if level == 0:
            if reset_weights is None:
                reset_to = initial
            else:
                reset_to = reset_weights(results[0])
                if reset_to is None:
                    raise TypeError("reset_weights returned None; it must return the "
                                    "weights (layer name -> kernel) to reset to.")
                reset_source = "the weights reset_weights returned"
    return results


def oneshot_percents(percents: Mapping[str, float], masks: Mapping[str, np.ndarray],
                     level: int, selection: str = "layerwise",
                     groups: Optional[Sequence[Sequence[str]]] = None,
                     order: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Rates that prune `masks` in one step to what `level` iterative steps keep.

    Iterative pruning at rate p takes pruning.count_to_prune(p, s) of the s
    survivors at each level; the counts depend on nothing else, so the
    survivors at level k are known in advance: per layer (layerwise), per
    pool of layers (global; the pools of `groups`, default the layers that
    share a rate) or per layer's units (unit). One step at the returned rate
    removes exactly the difference.

    Returns:
      layer name -> fraction in [0, 1]; the layers of a pool share one.
    """
    selector = pruning.make_selection(selection, groups if selection == "global" else None)
    return selector.oneshot_rates(percents, masks, level, order)


def oneshot_pruning(percents: Mapping[str, float], *, selection: str = "layerwise",
                    scores: str = "magnitude", seed: Optional[int] = None,
                    groups: Optional[Sequence[Sequence[str]]] = None,
                    order: Optional[Sequence[str]] = None,
                    **prune_options: Any) -> Callable[..., Network]:
    """A pruning function for the one-shot schedule.

    prune(masks, final_weights, level=k) prunes `masks` once, ranking by the
    scores of `final_weights`, to exactly the weights (or, for unit
    selection, the units) iterative pruning with `percents` keeps at level k:
    per layer for layerwise and unit selection, per pool for global.

    Args:
      percents: layer name -> per-level fraction, as for iterative pruning.
      selection, scores, seed, groups, order, prune_options: as in
        pruning.prune (global pools are fixed from `percents`, so the
        one-step rates never merge two pools).

    Raises:
      ValueError: an unknown selection or score, or random scores without a
        seed (here, before any training).
    """
    return pruning.PruningRule(percents, selection=selection, scores=scores, seed=seed,
                               groups=groups, order=order, oneshot=True, **prune_options)


def _same(a: Network, b: Network, exact: bool = True) -> bool:
    if set(a) != set(b):
        return False
    compare = np.array_equal if exact else np.allclose
    return all(compare(np.asarray(a[k], np.float32), np.asarray(b[k], np.float32))
               for k in a)
