"""K lottery trials trained together, level by level, as one population.

`run_trials` does what K calls of ``experiments.lottery.run_trial`` (one per
seed) do, with the same trial and run directories, the same recorded
identities (plus ``"population": {"size", "member"}`` in each trained run's
run_info) and the same locks, but each level's training of the trials that
still need it is one ``foundations.population.train_population`` call. Level
by level: each trial's masks come from pruning its previous level with its own
pruning function (``build.prune_fn(config, seed)``); a trial whose level is
already complete is read back (resume) and the others train together; with
``rewind_iteration`` K > 0 level 0 also saves rewind{K}/ and later levels
start from it. Only the iterative schedule of run_trial is supported, as
run_trial supports it.

A trial that diverges stops there, as run_trial would; the others go on to
the last level, and then a PopulationDivergedError names them.
"""

import contextlib
import copy
import logging
import os
from typing import Dict, List, Optional, Sequence, Union

from lottery_ticket.experiments import build
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import population
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

Trial = Dict[int, experiment.LevelResult]


def _datasets(config: ExperimentConfig, seeds: Sequence[int]) -> List[DatasetBase]:
    """Each trial's data set, as build.dataset(config, seed) gives it.

    The data are read once: the other trials get a copy with their own
    train_order_seed, which orders batches exactly as reading again would
    where the class orders them as DatasetBase does (by the seed alone).
    """
    base = build.dataset(config, int(seeds[0]))
    cls = type(base)
    shares_order = all(getattr(cls, name) is getattr(DatasetBase, name)
                       for name in ("batch_indices", "_epoch_order", "iterations_per_epoch"))
    datasets = []
    for seed in seeds:
        if int(seed) == base.train_order_seed:
            datasets.append(base)
        elif shares_order:
            other = copy.copy(base)
            other.train_order_seed = int(seed)
            datasets.append(other)
        else:
            datasets.append(build.dataset(config, int(seed)))
    return datasets


def run_trials(output_dirs: Union[str, Sequence[str]], config: ExperimentConfig,
               seeds: Sequence[int], presets: save_restore.NetworkLike = None,
               experiment_name: str = lottery.EXPERIMENT_NAME,
               progress: Progress = None) -> List[Trial]:
    """Runs (or resumes) one lottery trial per seed, training each level together.

    Args:
      output_dirs: the trial directories, one per seed; or a parent
        directory, whose trials are paths.trial(parent, seed)
        ({parent}/trial{seed}).
      config: data, model, training and pruning settings, as for run_trial.
        config['xla'] 'on' compiles the population's training loop with XLA,
        'off' does not, and 'auto' lets the population choose (see
        single_run.training_arguments and foundations.population).
      seeds: each trial's seed (its level-0 initialization, batch order and
        random pruning scores), all different.
      presets: optional level-0 initial weights for every trial.
      experiment_name: the run directories' name within each level.
      progress: as in trainer.train (False: show nothing).

    Returns:
      Per seed, level -> experiment.LevelResult, as run_trial returns.

    Raises:
      ValueError: a bad setting, seeds that repeat, or no seeds (before any work).
      runs.LockedError: another process uses one of the trials or runs.
      population.PopulationDivergedError: some trials diverged (the others
        ran to the end); its `results` holds, per trial, its levels or its
        DivergedError.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("run_trials needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds {seeds} repeat: each trial needs its own seed.")
    if isinstance(output_dirs, (str, os.PathLike)):
        trial_dirs = [paths.trial(os.fspath(output_dirs), seed) for seed in seeds]
    else:
        trial_dirs = [os.fspath(d) for d in output_dirs]
    if len(trial_dirs) != len(seeds):
        raise ValueError(f"{len(trial_dirs)} trial directories for {len(seeds)} seeds.")
    if len({os.path.abspath(d) for d in trial_dirs}) != len(trial_dirs):
        raise ValueError("two trials share a directory: each trial needs its own.")
    build.check(config)
    rewind = config["rewind_iteration"]
    levels = config["levels"]
    identities = [lottery.trial_identity(config, seed, experiment_name, presets)
                  for seed in seeds]
    prune_fns = [build.prune_fn(config, seed) for seed in seeds]
    datasets = _datasets(config, seeds)
    per_level = trainer.training_iterations(config["training_len"], datasets[0])
    preset_values = save_restore.standardize(presets)

    def run_dir(trial: int, level: int) -> str:
        return paths.run(trial_dirs[trial], level, experiment_name)

    results: List[Trial] = [{} for _ in seeds]
    failed: Dict[int, runs.DivergedError] = {}
    reset_to: List[Optional[Network]] = [preset_values for _ in seeds]
    with contextlib.ExitStack() as trial_locks:
        for trial_dir in trial_dirs:
            trial_locks.enter_context(runs.lock(trial_dir, "trial"))
        # Everything that can be wrong is found before level 0 trains.
        for trial, seed in enumerate(seeds):
            build.check_fit(config, datasets[trial],
                            build.model(config, preset_values, None, seed=seed),
                            presets=preset_values, pruned=True)
        for level in range(levels + 1):
            pending = []  # (trial, model)
            for trial, seed in enumerate(seeds):
                if trial in failed:
                    continue
                masks = None
                if level > 0:
                    previous = results[trial][level - 1]
                    prune = prune_fns[trial]
                    masks = (prune(previous.masks, previous.final, level=level)
                             if experiment.accepts_level(prune)
                             else prune(previous.masks, previous.final))
                saved = single_run.load_if_complete(run_dir(trial, level), identities[trial],
                                                    with_metrics=True)
                if saved is not None:
                    initial, final, saved_masks, metrics = saved
                    if masks is not None and not experiment._same(masks, saved_masks):  # pylint: disable=protected-access
                        raise ValueError(
                            f"{run_dir(trial, level)} was saved with masks that differ from "
                            "the ones pruning gives now: the saved experiment was made with "
                            "other settings. Use a new output directory.")
                    logger.info("%s: level %d is already complete; reading it back.",
                                trial_dirs[trial], level)
                    results[trial][level] = experiment.LevelResult(
                        level, saved_masks, initial, final, True, metrics)
                else:
                    model = build.model(config, reset_to[trial], masks, seed=seed)
                    pending.append((trial, model))
            if pending:
                _train_level(pending, level, config, datasets, run_dir, identities, results,
                             failed, experiment_name=experiment_name,
                             per_level=per_level, progress=progress)
            for trial in range(len(seeds)):
                if trial in failed or level not in results[trial]:
                    continue
                _check_reset(results[trial][level], reset_to[trial], trial_dirs[trial])
                if level == 0:
                    reset_to[trial] = (lottery.rewound_weights(run_dir(trial, 0), rewind)
                                       if rewind else results[trial][0].initial)
    for trial, trial_results in enumerate(results):
        for level, result in trial_results.items():
            logger.info("%s level %d: %.2f%% of weights remain%s", trial_dirs[trial], level,
                        100 * lottery.remaining_fraction(result.masks),
                        " (already complete)" if result.resumed else "")
    if failed:
        raise population.PopulationDivergedError(
            [failed.get(trial, results[trial]) for trial in range(len(seeds))])
    return results


def _train_level(pending, level: int, config: ExperimentConfig, datasets, run_dir,
                 identities, results: List[Trial], failed, *, experiment_name: str,
                 per_level: int, progress: Progress) -> None:
    """Trains one level of the trials in `pending` together, under each run's lock,
    recording each trial's LevelResult or its divergence."""
    rewind = config["rewind_iteration"]
    levels = config["levels"]
    trials = [trial for trial, _ in pending]
    with contextlib.ExitStack() as run_locks:
        for trial in trials:
            run_locks.enter_context(runs.lock(run_dir(trial, level)))
        arguments = single_run.training_arguments(config, level=level, population=True)
        trained = population.train_population(
            [datasets[trial] for trial in trials], [model for _, model in pending],
            arguments.pop("optimizer_fn"), arguments.pop("training_len"),
            [run_dir(trial, level) for trial in trials],
            run_infos=[dict(identities[trial], level=level, run_id="") for trial in trials],
            progress=progress,
            progress_label=(f"{experiment_name} level {level} of {levels} | "
                            f"{len(trials)} trials | "),
            iterations_after=(per_level - rewind) * (levels - level),
            raise_on_divergence=False, **arguments)
    for (trial, model), result in zip(pending, trained):
        if isinstance(result, runs.DivergedError):
            logger.warning("%s", result)
            failed[trial] = result
            continue
        results[trial][level] = experiment.LevelResult(
            level, model.masks, result.initial, result.final, False, result.metrics)


def _check_reset(result: experiment.LevelResult, reset_to: Optional[Network],
                 trial_dir: str) -> None:
    """What foundations.experiment checks of every level: it started from the
    weights it was reset to, with its mask applied."""
    if reset_to is None:
        return
    expected = {name: reset_to[name] * result.masks[name] for name in result.masks
                if name in reset_to}
    if not experiment._same(expected, {name: result.initial[name] for name in expected},  # pylint: disable=protected-access
                            exact=False):
        raise RuntimeError(f"{trial_dir}: level {result.level} did not start from the "
                           "weights it was reset to with its mask applied.")
