"""The lottery ticket experiment: train, prune, reset, repeat.

Two schedules share level 0 (the dense network):

* **iterative** (the paper's): level k prunes level k-1's masks using level
  k-1's final weights, resets the survivors and trains again;
* **one-shot** (the paper's Figure 4): level k prunes level 0's masks using
  level 0's final weights straight to the weights iterative pruning keeps at
  level k (``oneshot_pruning``), resets and trains.

Survivors are reset to level 0's initial weights, or to what ``reset_weights``
returns (e.g. level 0's weights at iteration K for late resetting).

There is one level loop, ``lockstep``: K trials level by level, each level's
training of all of them in one call (a population; ``experiments.lockstep``).
``experiment`` is that loop for one trial, with single functions.
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
    """What one pruning level produced.

    Attributes:
      level: the pruning level (0: the unpruned network).
      masks: layer -> the mask the level trained with.
      initial: layer -> the weights the level started from (at levels >= 1 the reset weights
        with this level's mask applied).
      final: layer -> the weights at the end of training.
      resumed: True when read back from a completed run, not trained now.
      metrics: {split: {"iteration": [...], "loss": [...], "accuracy": [...]}} as in
        metrics.json; None when train_model or completed_level did not give them.
    """
    level: int
    masks: Network
    initial: Network  # At levels >= 1: the reset weights with this level's mask applied.
    final: Network
    resumed: bool  # True when read back from a completed run, not trained now.
    # {split: {"iteration": [...], "loss": [...], "accuracy": [...]}} as in
    # metrics.json; None when train_model or completed_level did not give them.
    metrics: Optional[Metrics] = None


def accepts_level(function: Callable) -> bool:
    """Whether a pruning function takes a `level` keyword (or ``**kwargs``).

    Args:
      function: a pruning function.
    """
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

    Args:
      prune_masks: the pruning function, prune_masks(masks, final_weights, ...) -> masks.
      source: the level whose masks and final weights are pruned.
      level: the level the new masks are for.
      tell_level: pass level=level (the function accepts it).
      initial: level 0's initial weights.
      rewind: the weights survivors are reset to, if not `initial`; else None.
      make_model: make_model(level, presets, masks) -> a model, for scores that need one.
      make_dataset: make_dataset() -> the training data, for scores that need it.

    Returns:
      The new masks, layer -> array.
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


Trial = Dict[int, LevelResult]
# An injected function's answer for a trial that could not go on (e.g. it
# diverged): lockstep records it and stops that trial; the others go on.
TrialFailure = BaseException


@dataclasses.dataclass
class LockstepResult:
    """What `lockstep` produced: each trial's levels, and the trials that stopped.

    Attributes:
      levels: per trial (in the order of `prune_masks`), level -> LevelResult
        of the levels it reached.
      failed: trial index -> what train_models returned in place of its
        result (e.g. a runs.DivergedError); a failed trial has no level from
        that one on.
    """
    levels: List[Trial]
    failed: Dict[int, TrialFailure]


def _next_masks(prune_masks: Callable[..., Network], source: LevelResult, level: int,
                initial: Network, rewind: Optional[Network], make_models: Callable,
                trial: int, make_dataset: Optional[Callable[[int], DatasetBase]]) -> Network:
    """The masks of `level` of one trial (the one place the loop prunes): see
    prune_level, with that trial's model and data as the context's providers."""
    def make_model(level: int, weights: Optional[Network], masks: Optional[Network]):
        return make_models(level, [trial], [weights], [masks])[0]

    def trial_dataset() -> DatasetBase:
        if make_dataset is None:
            raise ValueError("this pruning rule reads the training data, but the "
                             "experiment was given no make_dataset to read it from.")
        return make_dataset(trial)

    return prune_level(prune_masks, source, level, accepts_level(prune_masks), initial,
                       rewind, make_model, trial_dataset)


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
    """Runs magnitude pruning with resetting, iteratively or one-shot: one trial.

    Level 0 trains the dense network. With schedule 'iterative', each level
    k >= 1 prunes the masks of level k-1 using that level's final weights,
    resets the surviving weights (by default to the level-0 initial values;
    see `reset_weights`), and trains again. With schedule 'oneshot', each
    level k prunes level 0's masks using level 0's final weights, straight to
    level k (`prune_masks` must take `level`; see oneshot_pruning).

    This is `lockstep` with one trial; `lockstep` runs K trials level by
    level, each level's training of all of them in one call.

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
    def make_models(level, trials, level_presets, masks):
        return [make_model(level, level_presets[0], masks[0])]

    def train_models(level, trials, models):
        return [train_model(level, make_dataset(), models[0])]

    outcome = lockstep(
        make_models, train_models, [prune_masks], iterations, presets=[presets],
        completed_levels=None if completed_level is None else (
            lambda level, trials: [completed_level(level)]),
        reset_weights=None if reset_weights is None else (
            lambda trials, level0s: [reset_weights(level0s[0])]),
        schedule=schedule, make_dataset=lambda trial: make_dataset())
    return outcome.levels[0]


def lockstep(make_models: Callable[[int, List[int], List[Optional[Network]],
                                    List[Optional[Network]]], Sequence[ModelBase]],
             train_models: Callable[[int, List[int], List[ModelBase]],
                                    Sequence[Union[Tuple[Network, Network], TrialFailure]]],
             prune_masks: Sequence[Callable[..., Network]],
             iterations: Union[int, Sequence[int]],
             presets: Optional[Sequence[Optional[Network]]] = None,
             completed_levels: Optional[Callable[[int, List[int]],
                                                 Sequence[Optional[Tuple]]]] = None,
             reset_weights: Optional[Callable[[List[int], List[LevelResult]],
                                              Sequence[Network]]] = None,
             schedule: str = "iterative",
             names: Optional[Sequence[str]] = None,
             make_dataset: Optional[Callable[[int], DatasetBase]] = None) -> LockstepResult:
    """Runs K trials of the experiment together, level by level.

    Each trial is what `experiment` does with its own pruning function; the
    difference is that at each level the trials that still need training are
    built by one make_models call and trained by one train_models call (e.g.
    as one population: foundations.population.train_population). The
    injected functions take and return lists over the trials they are asked
    about, given by their indices (0..K-1, in the order of `prune_masks`).

    Args:
      make_models: make_models(level, trials, presets, masks) returns one new
        model per trial in `trials`, built from that trial's presets and
        masks (lists in the order of `trials`; None as in `experiment`).
      train_models: train_models(level, trials, models) trains the models and
        returns, per trial, (initial_weights, final_weights) (with `metrics`
        if it has them), or an exception instance for a trial that cannot go
        on (a runs.DivergedError, say): that trial stops there, is listed in
        the result's `failed`, and the others go on.
      prune_masks: one pruning function per trial (see `experiment`); their
        number is the number of trials K.
      iterations: as in `experiment`, for every trial.
      presets: optional level-0 initial weights, one per trial (None entries
        for none).
      completed_levels: completed_levels(level, trials) returns, per trial,
        what `experiment`'s completed_level returns: a finished level to read
        back, or None.
      reset_weights: reset_weights(trials, level_0s) returns, per trial, the
        weights its survivors are reset to (see `experiment`); None resets
        each to its level 0's initial weights.
      schedule: 'iterative' or 'oneshot'.
      names: one name per trial (e.g. its directory), put before the level
        in logs and errors.
      make_dataset: make_dataset(trial) returns a trial's training data, for
        pruning rules that read it (their pruning.Context).

    Returns:
      A LockstepResult, with each trial's levels and the trials that failed.

    Raises:
      ValueError: as in `experiment`; no trials; presets or names that do not
        pair up with the trials; a finished level saved with masks that
        differ from the ones pruning gives now.
      RuntimeError: as in `experiment`, naming the trial.
      TypeError: `reset_weights` returned None.
    """
    count = len(prune_masks)
    if count == 0:
        raise ValueError("lockstep needs at least one trial (one pruning function each).")
    presets = [None] * count if presets is None else list(presets)
    labels = [""] * count if names is None else [f"{name}: " for name in names]
    for what, given in (("presets", presets), ("names", labels)):
        if len(given) != count:
            raise ValueError(f"{len(given)} {what} for {count} trials: give one per trial.")
    levels = _levels(iterations, schedule)
    if schedule == "oneshot":
        for prune in prune_masks:
            if not accepts_level(prune):
                raise ValueError(
                    "a one-shot schedule prunes level 0 straight to each level k, so "
                    "prune_masks must accept level=k (e.g. experiment.oneshot_pruning("
                    f"percents)); {prune!r} does not.")
    results: List[Trial] = [{} for _ in range(count)]
    failed: Dict[int, TrialFailure] = {}
    reset_to: List[Optional[Network]] = list(presets)
    # Level 0 is checked against its presets, which are its initialization.
    reset_source = "the level-0 initialization"
    for level in [0] + levels:
        going = [trial for trial in range(count) if trial not in failed]
        masks: Dict[int, Optional[Network]] = {trial: None for trial in going}
        if level > 0:
            for trial in going:
                source = results[trial][0 if schedule == "oneshot" else level - 1]
                masks[trial] = _next_masks(
                    prune_masks[trial], source, level, results[trial][0].initial,
                    reset_to[trial] if reset_weights is not None else None,
                    make_models, trial, make_dataset)
        saved = (list(completed_levels(level, going)) if completed_levels is not None
                 else [None] * len(going))
        _check_answers("completed_levels", saved, going)
        pending = [trial for trial, finished in zip(going, saved) if finished is None]
        for trial, finished in zip(going, saved):
            if finished is not None:
                results[trial][level] = _read_back(level, finished, masks[trial],
                                                   labels[trial])
        if pending:
            _train(level, pending, make_models, train_models, reset_to, masks, results,
                   failed)
        for trial in going:
            if trial not in failed:
                _check_start(results[trial][level], reset_to[trial],
                             f"{labels[trial]}level {level}", reset_source)
        if level == 0:
            done = [trial for trial in going if trial not in failed]
            if reset_weights is None:
                for trial in done:
                    reset_to[trial] = results[trial][0].initial
            elif done:
                chosen = list(reset_weights(done, [results[trial][0] for trial in done]))
                _check_answers("reset_weights", chosen, done)
                for trial, weights in zip(done, chosen):
                    if weights is None:
                        raise TypeError("reset_weights returned None; it must return the "
                                        "weights (layer name -> kernel) to reset to.")
                    reset_to[trial] = weights
                reset_source = "the weights reset_weights returned"
    return LockstepResult(results, failed)


def _check_answers(function: str, answers: Sequence[Any], trials: Sequence[int]) -> None:
    """ValueError unless an injected function answered once per trial asked about."""
    if len(answers) != len(trials):
        raise ValueError(f"{function} answered {len(answers)} times for {len(trials)} "
                         f"trials ({trials}); it must answer once per trial, in their order.")


def _read_back(level: int, finished: Tuple, masks: Optional[Network], label: str
               ) -> LevelResult:
    """A finished level's LevelResult, refused if pruning now gives other masks."""
    if masks is not None and not _same(masks, finished[2]):
        raise ValueError(
            f"{label}level {level} was saved with masks that differ from the ones pruning "
            "gives now: the saved experiment was made with other settings. Use a new "
            "output directory.")
    logger.info("%slevel %d is already complete; reading it back.", label, level)
    return LevelResult(level, finished[2], finished[0], finished[1], True,
                       finished[3] if len(finished) > 3 else None)


def _train(level: int, pending: List[int], make_models: Callable, train_models: Callable,
           reset_to: List[Optional[Network]], masks: Mapping[int, Optional[Network]],
           results: List[Trial], failed: Dict[int, TrialFailure]) -> None:
    """Builds and trains the `pending` trials' models of a level together, recording
    each one's LevelResult, or its failure."""
    models = list(make_models(level, pending, [reset_to[trial] for trial in pending],
                              [masks[trial] for trial in pending]))
    _check_answers("make_models", models, pending)
    trained = list(train_models(level, pending, models))
    _check_answers("train_models", trained, pending)
    for trial, model, result in zip(pending, models, trained):
        if isinstance(result, BaseException):
            failed[trial] = result
            continue
        initial, final = result
        results[trial][level] = LevelResult(
            level, model.masks if masks[trial] is None else masks[trial], initial, final,
            False, getattr(result, "metrics", None))


def _check_start(result: LevelResult, reset_to: Optional[Network], what: str,
                 reset_source: str) -> None:
    """RuntimeError unless a level started from the weights it was reset to,
    with its mask applied."""
    if reset_to is None:
        return
    expected = {name: reset_to[name] * result.masks[name] for name in result.masks
                if name in reset_to}
    if not _same(expected, {name: result.initial[name] for name in expected}, exact=False):
        raise RuntimeError(
            f"{what} did not start from {reset_source} with its mask applied: make_model "
            "must build the model with the presets and masks it is given.")


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

    Args:
      percents: layer -> the per-level rate of iterative pruning.
      masks: layer -> level 0's mask.
      level: how many iterative levels the one step stands for.
      selection: 'layerwise', 'global' or 'unit'.
      groups: global selection's pools (None: the layers that share a rate).
      order: the model's layer order (None: the names' natural order).

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
      selection: as in pruning.prune (global pools are fixed from `percents`, so the
        one-step rates never merge two pools).
      scores: as in pruning.prune.
      seed: as in pruning.prune.
      groups: as in pruning.prune.
      order: as in pruning.prune.
      prune_options: as in pruning.prune.

    Returns:
      A PruningRule with oneshot=True.

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
