"""One-shot pruning beside a trial's iterative levels (the paper's Figure 4).

From the trained level-0 network of a trial, level k prunes straight to the
weights iterative pruning keeps at level k (the same count per layer, or per
pool for global pruning: ``foundations.experiment.oneshot_pruning``), resets
the survivors to level 0's initial weights (or, with ``rewind_iteration`` K,
to its weights at iteration K) and trains. Runs land beside the iterative ones,
``{trial}/{k}/oneshot/``, so the report compares the two in one figure.

Level 0 is the trial's own (``{trial}/0/lottery/``, same seed and settings):
read back when complete, trained there otherwise. Each run is locked while
it trains, resumes like a lottery level, and is refused if it was made with
other settings.
"""

import logging
from typing import Dict, Iterable, Optional

from lottery_ticket.experiments import build
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig, parse_level_list
from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.progress import Progress

logger = logging.getLogger("lottery_ticket")

EXPERIMENT_NAME = "oneshot"


def pruning_function(config: ExperimentConfig, trial_seed: Optional[int] = None):
    """The one-shot pruning function of a configuration.

    prune(masks, final, level=k) to iterative level k's counts, as configured
    (random scores seeded as the trial's iterative pruning is: build.scores_seed).

    Args:
      config: the experiment's configuration.
      trial_seed: the trial's seed (see build.scores_seed).

    Raises:
      ValueError: a strategy whose counts one-shot pruning does not know (one
        registered by a family), or a bad score or seed.
    """
    return experiment.oneshot_pruning(
        dict(config["prune_percents"]), selection=config["pruning"],
        scores=config["prune_scores"], seed=build.scores_seed(config, trial_seed))


def run_oneshot(trial_dir: str, config: ExperimentConfig, levels: Iterable[int],
                seed: int = 0, presets: save_restore.NetworkLike = None,
                lottery_name: str = lottery.EXPERIMENT_NAME,
                experiment_name: str = EXPERIMENT_NAME,
                progress: Progress = None) -> Dict[int, experiment.LevelResult]:
    """Runs (or resumes) one-shot pruning to each of `levels` in a trial.

    Args:
      trial_dir: the trial directory, e.g. results/lottery/trial1.
      config: the trial's settings (those of its level 0; `levels` of the
        configuration is not used).
      levels: the pruning levels to reach in one shot, e.g. [3, 7, 12].
      seed: the trial's seed (its level 0's).
      presets: level 0's presets, if the trial was given any.
      lottery_name: the name of the trial's runs (level 0 is
        {trial_dir}/0/{lottery_name}).
      experiment_name: the one-shot runs' name: {trial_dir}/{k}/{experiment_name}.
      progress: as in trainer.train (False: show nothing).

    Returns:
      level -> experiment.LevelResult for level 0 and each of `levels`, with
      their metrics.

    Raises:
      ValueError: bad levels or settings, or a complete run (level 0 or a
        one-shot run) made with other settings, before any training.
      runs.LockedError: another process is using one of the runs.
    """
    levels = parse_level_list(levels)
    if experiment_name == lottery_name:
        raise ValueError(
            f"the one-shot runs' name {experiment_name!r} is the trial's own runs' name: "
            f"they would take the place of the iterative levels in {trial_dir}. Name them "
            "apart (the default is 'oneshot').")
    build.check(config)
    pruning_fn = pruning_function(config, seed)
    rewind = config["rewind_iteration"]
    level0_run_info = lottery.trial_run_info(config, seed, lottery_name, presets)
    run_info = dict(lottery.trial_run_info(config, seed, experiment_name, presets),
                    schedule="oneshot", pruning_rule=pruning_fn.get_config())

    def run_dir(level: int) -> str:
        if level == 0:
            return paths.run(trial_dir, 0, lottery_name)
        return paths.run(trial_dir, level, experiment_name)

    def run_info_of(level: int):
        return level0_run_info if level == 0 else run_info

    def make_dataset():
        return build.dataset(config, int(seed))

    def make_model(level, level_presets, masks):
        return build.model(config, level_presets, masks, seed=seed)

    def completed_level(level):
        return single_run.load_if_complete(run_dir(level), run_info_of(level),
                                           with_metrics=True)

    preset_values = save_restore.standardize(presets)
    build.check_fit(config, make_dataset(), make_model(0, preset_values, None),
                    presets=preset_values, pruned=True)
    per_level = trainer.training_iterations(config["training_len"], make_dataset())
    train_model = lottery.level_trainer(
        config, run_dir, run_info_of,
        lambda level: f"{experiment_name} level {level} | ",
        lambda level: (per_level - rewind) * sum(1 for k in levels if k > level), progress)
    results = experiment.experiment(
        make_dataset, make_model, train_model, pruning_fn, levels, presets=preset_values,
        completed_level=completed_level,
        reset_weights=lottery.rewinder(run_dir(0), rewind) if rewind else None,
        schedule="oneshot")
    for level, result in results.items():
        logger.info("%s level %d: %.2f%% of weights remain%s",
                    lottery_name if level == 0 else experiment_name, level,
                    100 * lottery.remaining_fraction(result.masks),
                    " (already complete)" if result.resumed else "")
    return results
