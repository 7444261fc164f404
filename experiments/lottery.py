"""One trial of the lottery ticket experiment, from an ExperimentConfig.

Level 0 trains the dense network; each following level prunes with the
configured strategy, resets the survivors and trains again. Runs land in
``{output_dir}/{level}/{experiment_name}/``. Calling it again with the same
configuration resumes after the last completed level; more levels extend the
trial; other settings are refused, naming each one.

With ``rewind_iteration`` K > 0 (late resetting), level 0 also saves its
weights at iteration K to ``{output_dir}/0/{experiment_name}/rewind{K}/``, and
every later level resets its survivors to them and trains from iteration K to
the end (N - K iterations, with level 0's batches of those iterations).
"""

import logging
import os
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

EXPERIMENT_NAME = "lottery"


def remaining_fraction(masks: Network) -> float:
    """Fraction of all masked weights that survive.

    Args:
      masks: layer -> mask.
    """
    kept = sum(float(np.count_nonzero(m)) for m in masks.values())
    return kept / max(1, sum(int(np.size(m)) for m in masks.values()))


def rewound_weights(level0_dir: str, rewind_iteration: int) -> Network:
    """Level 0's saved weights at the rewind iteration.

    A ValueError says why they are missing and what to do.

    Args:
      level0_dir: level 0's run directory.
      rewind_iteration: the rewind iteration K.

    Raises:
      ValueError: the snapshot is missing, incomplete, of other shapes or not finite.
    """
    directory = paths.rewind(level0_dir, rewind_iteration)
    if not os.path.isdir(directory):
        raise ValueError(
            f"{level0_dir} is complete but has no {os.path.basename(directory)}/, the "
            f"weights at iteration {rewind_iteration} that later levels are reset to "
            "(--rewind_iteration): they were deleted, or the run predates them. Level 0 "
            "must be trained again to make them: delete that run directory and rerun "
            "(later levels depend on it), or use a new output directory.")
    weights = save_restore.restore_network(directory)
    final = save_restore.restore_network(paths.final(level0_dir))
    expected = runs.read_done(level0_dir).get("snapshot_layers") or list(final)
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(
            f"{directory} is incomplete: {', '.join(f'{name}.npy' for name in missing)} "
            "missing (the level-0 run saved them). Level 0 must be trained again to make "
            "them: delete that run directory and rerun, or use a new output directory.")
    for name, values in weights.items():
        if name in final and np.shape(values) != np.shape(final[name]):
            raise ValueError(f"{directory}/{name}.npy has shape {np.shape(values)}, but level "
                             f"0's {name} has {np.shape(final[name])}: the file is damaged. "
                             "Delete the level-0 run directory and rerun.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{directory}/{name}.npy holds values that are not finite: the "
                             "file is damaged. Delete the level-0 run directory and rerun.")
    return weights


def rewinder(level0_dir: str, rewind_iteration: int
             ) -> Callable[[experiment.LevelResult], Network]:
    """The reset_weights function of rewinding, for foundations.experiment.

    reset_weights for foundations.experiment: level 0's weights at the rewind
    iteration, read from its run (so a resumed level 0 gives the same bits).

    Args:
      level0_dir: level 0's run directory.
      rewind_iteration: the rewind iteration K.

    Returns:
      reset_weights(level0) -> layer -> weights.
    """
    def reset_weights(level0: experiment.LevelResult) -> Network:
        return rewound_weights(level0_dir, rewind_iteration)
    return reset_weights


def level_trainer(config: ExperimentConfig, run_dir: Callable[[int], str],
                  run_info: Callable[[int], Mapping[str, Any]], label: Callable[[int], str],
                  iterations_after: Callable[[int], int], progress: Progress = None
                  ) -> Callable:
    """The train_model function foundations.experiment calls for each level.

    train_model(level, dataset, model) for foundations.experiment: each level
    under its run directory's lock, recording run_info(level); level 0 from
    iteration 0, saving the rewind snapshot if any; later levels from the
    rewind iteration.

    Args:
      config: the experiment's configuration.
      run_dir: level -> the level's run directory.
      run_info: level -> the run_info the level records.
      label: level -> the progress label of the level.
      iterations_after: level -> the iterations still to come after the level, for the ETA.
      progress: as in trainer.train.

    Returns:
      train_model(level, dataset, model) -> trainer.TrainResult.
    """
    def train_model(level, dataset, model):
        recorded = dict(run_info(level), level=level, run_id="")
        with runs.lock(run_dir(level)):
            return single_run.train_model(
                dataset, model, run_dir(level), config, recorded,
                progress_label=label(level),
                iterations_after=iterations_after(level), progress=progress, level=level)

    return train_model


def trial_run_info(config: ExperimentConfig, seed: int, experiment_name: str,
                   presets: save_restore.NetworkLike) -> Dict[str, Any]:
    """The run_info a trial's runs record besides their level.

    Runs are compared on it when a trial is resumed.

    Args:
      config: the experiment's configuration.
      seed: the trial's model seed.
      experiment_name: the run name of the trial's runs ('lottery').
      presets: the trial's presets argument (None: drawn from the seed).
    """
    return {"config": config.to_json(), "seed": int(seed),
            "experiment_name": experiment_name, "data": build.data_identity(config),
            "presets": single_run.source_of(presets),
            # Recorded, not compared: the configuration above decides it.
            "pruning_rule": build.pruning_rule_config(config, seed)}


def run_trial(output_dir: str, config: ExperimentConfig, seed: int = 0,
              presets: save_restore.NetworkLike = None,
              experiment_name: str = EXPERIMENT_NAME,
              reset_weights: Optional[Callable[[experiment.LevelResult], Network]] = None,
              progress: Progress = None) -> Dict[int, experiment.LevelResult]:
    """Runs (or resumes) one trial of config['levels'] pruning levels after level 0.

    Args:
      output_dir: the trial directory.
      config: data, model, training and pruning settings.
      seed: seeds the level-0 initialization and the batch order.
      presets: optional level-0 initial weights (dict or directory).
      experiment_name: the run directories' name within each level.
      reset_weights: given level 0's result, the weights survivors are reset
        to; default level 0's initial weights (see foundations.experiment), or
        with config['rewind_iteration'] K > 0 its weights at iteration K.
      progress: as in trainer.train (False: show nothing).

    Returns:
      level -> experiment.LevelResult, with each level's metrics.

    Raises:
      ValueError: a bad setting, or (before any work) a rewind iteration at or
        after the end of training; a resumed level 0 without its rewind
        snapshot.
    """
    build.check(config)
    rewind = config["rewind_iteration"]
    if rewind and reset_weights is not None:
        raise ValueError("both reset_weights and rewind_iteration say what survivors are "
                         "reset to: pass one of them.")
    run_info = trial_run_info(config, seed, experiment_name, presets)
    levels = config["levels"]

    def run_dir(level: int) -> str:
        return paths.run(output_dir, level, experiment_name)

    def make_model(level, level_presets, masks):
        return build.model(config, level_presets, masks, seed=seed)

    def make_dataset():
        return build.dataset(config, int(seed))

    per_level = trainer.training_iterations(config["training_len"], make_dataset())
    train_model = level_trainer(
        config, run_dir, lambda level: run_info,
        lambda level: f"{experiment_name} level {level} of {levels} | ",
        lambda level: (per_level - rewind) * (levels - level), progress)

    def completed_level(level):
        return single_run.load_if_complete(run_dir(level), run_info, with_metrics=True)

    if rewind:
        reset_weights = rewinder(run_dir(0), rewind)

    preset_values = save_restore.standardize(presets)
    with runs.lock(output_dir, "trial"):
        # Everything that can be wrong is found before level 0 trains.
        build.check_fit(config, make_dataset(), make_model(0, preset_values, None),
                        presets=preset_values, pruned=True)
        results = experiment.experiment(
            make_dataset, make_model, train_model, build.prune_fn(config, seed), levels,
            presets=preset_values, completed_level=completed_level,
            reset_weights=reset_weights)
    for level, result in results.items():
        logger.info("level %d: %.2f%% of weights remain%s", level,
                    100 * remaining_fraction(result.masks),
                    " (already complete)" if result.resumed else "")
    return results
