"""One trial of the lottery ticket experiment, from an ExperimentConfig.

Level 0 trains the dense network; each following level prunes with the
configured strategy, resets the survivors and trains again. Runs land in
``{output_dir}/{level}/{experiment_name}/``. Calling it again with the same
configuration resumes after the last completed level; more levels extend the
trial; other settings are refused, naming each one.
"""

import logging
from typing import Callable, Dict, Optional

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
    """Fraction of all masked weights that survive."""
    kept = sum(float(np.count_nonzero(m)) for m in masks.values())
    return kept / max(1, sum(int(np.size(m)) for m in masks.values()))


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
        to; default level 0's initial weights (see foundations.experiment).
      progress: as in trainer.train (False: show nothing).

    Returns:
      level -> experiment.LevelResult.
    """
    build.check(config)
    identity = {"config": config.to_json(), "seed": int(seed),
                "experiment_name": experiment_name, "data": build.data_identity(config),
                "presets": single_run.source_of(presets)}
    levels = config["levels"]

    def run_dir(level: int) -> str:
        return paths.run(output_dir, level, experiment_name)

    def make_model(level, level_presets, masks):
        return build.model(config, level_presets, masks, seed=seed)

    def train_model(level, dataset, model):
        info = dict(identity, level=level, run_id="")
        per_level = trainer.training_iterations(config["training_len"], dataset)
        with runs.lock(run_dir(level)):
            return single_run.train_model(
                dataset, model, run_dir(level), config, info,
                progress_label=f"{experiment_name} level {level} of {levels} | ",
                iterations_after=per_level * (levels - level), progress=progress)

    def make_dataset():
        return build.dataset(config, int(seed))

    def completed_level(level):
        return single_run.load_if_complete(run_dir(level), identity)

    preset_values = save_restore.standardize(presets)
    with runs.lock(output_dir, "trial"):
        # Everything that can be wrong is found before level 0 trains.
        build.check_fit(config, make_dataset(), make_model(0, preset_values, None),
                        presets=preset_values, pruned=True)
        results = experiment.experiment(
            make_dataset, make_model, train_model, build.prune_fn(config), levels,
            presets=preset_values, completed_level=completed_level,
            reset_weights=reset_weights)
    for level, result in results.items():
        logger.info("level %d: %.2f%% of weights remain%s", level,
                    100 * remaining_fraction(result.masks),
                    " (already complete)" if result.resumed else "")
    return results
