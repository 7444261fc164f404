"""Lottery trials trained together: K trials, level by level, as one population.

(Formerly ``experiments.population``, which still imports as this module's
names.)

`run_trials` does what K calls of ``experiments.lottery.run_trial`` (one per
seed) do, with the same trial and run directories, the same recorded
run_info (plus ``"population": {"size", "member"}`` in each trained run's) and the same locks, but each level's training of the trials that
still need it is one ``foundations.population.train_population`` call. Level
by level: each trial's masks come from pruning its previous level with its own
pruning function (``build.prune_fn(config, seed)``); a trial whose level is
already complete is read back (resume) and the others train together; with
``rewind_iteration`` K > 0 level 0 also saves rewind{K}/ and later levels
start from it. The level loop is ``foundations.experiment.lockstep``'s, the
one ``run_trial`` goes through too. Only the iterative schedule of run_trial is supported, as
run_trial supports it.

A trial that diverges stops there, as run_trial would; the others go on to
the last level, and then a PopulationDivergedError names them.
"""

import contextlib
import copy
import logging
import os
from typing import Dict, List, Sequence, Union

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

logger = logging.getLogger("lottery_ticket")

Trial = Dict[int, experiment.LevelResult]


def datasets(config: ExperimentConfig, seeds: Sequence[int]) -> List[DatasetBase]:
    """Each trial's data set, as build.dataset(config, seed) gives it.

    The data are read once: the other trials get a copy with their own
    train_order_seed, which orders batches exactly as reading again would
    where the class orders them as DatasetBase does (by the seed alone).

    Args:
      config: the experiment's configuration.
      seeds: one train_order_seed per trial.
    """
    base = build.dataset(config, int(seeds[0]))
    cls = type(base)
    shares_order = all(getattr(cls, name) is getattr(DatasetBase, name)
                       for name in ("batch_indices", "_epoch_order", "iterations_per_epoch"))
    made = []
    for seed in seeds:
        if int(seed) == base.train_order_seed:
            made.append(base)
        elif shares_order:
            other = copy.copy(base)
            other.train_order_seed = int(seed)
            made.append(other)
        else:
            made.append(build.dataset(config, int(seed)))
    return made


def same_arrays(one: DatasetBase, other: DatasetBase) -> bool:
    """Whether two data sets differ at most in their batch order.

    Args:
      one: a data set.
      other: another data set.

    Returns:
      True when both hold the very same array objects in the same splits and
      have the same batch size.
    """
    if one is other:
        return True
    if (one.train_batch_size != other.train_batch_size
            or set(one.splits) != set(other.splits)):
        return False
    return all(a is b for split, arrays in one.splits.items()
               for a, b in zip(arrays, other.splits[split]))


def run_trials(output_dirs: Union[str, Sequence[str]], config: ExperimentConfig,
               seeds: Sequence[int], presets: save_restore.NetworkLike = None,
               experiment_name: str = lottery.EXPERIMENT_NAME,
               progress: Progress = None) -> List[Trial]:
    """Runs (or resumes) one lottery trial per seed, training each level together.

    The level loop is foundations.experiment.lockstep's; this function says
    where each trial's runs live, what they record, and that a level's
    training is one population.

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
      PopulationDivergedError: a trial diverged; it holds every trial's outcome.
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
    run_infos = [lottery.trial_run_info(config, seed, experiment_name, presets)
                 for seed in seeds]
    trial_data = datasets(config, seeds)
    per_level = trainer.training_iterations(config["training_len"], trial_data[0])
    preset_values = save_restore.standardize(presets)

    def run_dir(trial: int, level: int) -> str:
        return paths.run(trial_dirs[trial], level, experiment_name)

    def make_models(level, trials, level_presets, masks):
        return [build.model(config, start, mask, seed=seeds[trial])
                for trial, start, mask in zip(trials, level_presets, masks)]

    def train_models(level, trials, models):
        arguments = single_run.training_arguments(config, level=level, population=True)
        with contextlib.ExitStack() as run_locks:
            for trial in trials:
                run_locks.enter_context(runs.lock(run_dir(trial, level)))
            trained = population.train_population(
                [trial_data[trial] for trial in trials], models,
                arguments.pop("optimizer_fn"), arguments.pop("training_len"),
                [run_dir(trial, level) for trial in trials],
                run_infos=[dict(run_infos[trial], level=level, run_id="")
                           for trial in trials],
                progress=progress,
                progress_label=(f"{experiment_name} level {level} of {levels} | "
                                f"{len(trials)} trials | "),
                iterations_after=(per_level - rewind) * (levels - level),
                raise_on_divergence=False, **arguments)
        for result in trained:
            if isinstance(result, runs.DivergedError):
                logger.warning("%s", result)
        return trained

    def completed_levels(level, trials):
        return [single_run.load_if_complete(run_dir(trial, level), run_infos[trial],
                                            with_metrics=True) for trial in trials]

    def rewound(trials, level0s):
        return [lottery.rewound_weights(run_dir(trial, 0), rewind) for trial in trials]

    with contextlib.ExitStack() as trial_locks:
        for trial_dir in trial_dirs:
            trial_locks.enter_context(runs.lock(trial_dir, "trial"))
        # Everything that can be wrong is found before level 0 trains. The trials
        # differ only in their seed (initial values, batch order), which no check
        # reads: one check covers every trial whose data are the first trial's
        # arrays, and a population of many trials builds no model per trial here.
        for trial, seed in enumerate(seeds):
            if trial == 0 or not same_arrays(trial_data[trial], trial_data[0]):
                build.check_fit(config, trial_data[trial],
                                build.model(config, preset_values, None, seed=seed),
                                presets=preset_values, pruned=True)
        outcome = experiment.lockstep(
            make_models, train_models, [build.prune_fn(config, seed) for seed in seeds],
            levels, presets=[preset_values] * len(seeds), completed_levels=completed_levels,
            reset_weights=rewound if rewind else None, names=trial_dirs,
            make_dataset=lambda trial: trial_data[trial])
    results = outcome.levels
    for trial, trial_results in enumerate(results):
        for level, result in trial_results.items():
            logger.info("%s level %d: %.2f%% of weights remain%s", trial_dirs[trial], level,
                        100 * lottery.remaining_fraction(result.masks),
                        " (already complete)" if result.resumed else "")
    if outcome.failed:
        raise population.PopulationDivergedError(
            [outcome.failed.get(trial, results[trial]) for trial in range(len(seeds))])
    return results
