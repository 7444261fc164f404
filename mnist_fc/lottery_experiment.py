"""The iterative-pruning lottery ticket experiment on LeNet-300-100.

One call runs one trial: level 0 trains the dense network, and each of the
following levels prunes, resets the survivors to the level-0 initialization
and trains again. Runs land in ``{output_dir}/{level}/{experiment_name}/``.
Calling it again with the same arguments resumes after the last completed
level; more levels extend the trial.
"""

import functools
import logging
from typing import Dict, Mapping, Optional

from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import pruning
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import train

logger = logging.getLogger("lottery_ticket")


def run_experiment(output_dir: str, mnist_location: str = constants.MNIST_LOCATION,
                   config: Optional[constants.TrainingConfig] = None,
                   levels: int = constants.NUM_LEVELS,
                   prune_percents: Optional[Mapping[str, float]] = None,
                   experiment_name: str = constants.EXPERIMENT_NAME,
                   seed: int = 0, presets: save_restore.NetworkLike = None,
                   ) -> Dict[int, experiment.LevelResult]:
    """Runs (or resumes) one trial of the lottery ticket experiment.

    Args:
      output_dir: the trial directory.
      mnist_location: directory of the IDX files.
      config: training hyperparameters (constants.TrainingConfig).
      levels: pruning levels after level 0.
      prune_percents: layer -> fraction of surviving weights pruned per level;
        default constants.PRUNE_PERCENTS.
      experiment_name: the run directories' name within each level.
      seed: seeds the level-0 initialization and the batch order.
      presets: optional level-0 initial weights (dict or directory).

    Returns:
      level -> experiment.LevelResult.
    """
    config = config or constants.TrainingConfig()
    percents = dict(prune_percents or constants.PRUNE_PERCENTS)
    identity = {"config": config.to_json(), "seed": int(seed),
                "prune_percents": percents, "experiment_name": experiment_name}

    def run_dir(level: int) -> str:
        return paths.run(output_dir, level, experiment_name)

    def make_model(level, presets, masks):
        return train.make_model(config, presets, masks, seed=seed)

    def train_model(level, dataset, model):
        info = dict(identity, level=level, run_id="")
        return train.train_model(dataset, model, run_dir(level), config, info,
                                 progress_label=f"{experiment_name} level {level} | ")

    def make_dataset():
        return train.load_dataset(mnist_location, config.validation_size,
                                  config.batch_size, int(seed))

    results = experiment.experiment(
        make_dataset, make_model, train_model,
        functools.partial(pruning.prune_by_percent, percents), levels,
        presets=save_restore.standardize(presets),
        completed_level=lambda level: save_restore.load_complete_run(run_dir(level),
                                                                    identity))
    for level, result in results.items():
        kept = sum(float(m.sum()) for m in result.masks.values())
        total = sum(m.size for m in result.masks.values())
        logger.info("level %d: %.2f%% of weights remain%s", level, 100 * kept / total,
                    " (already complete)" if result.resumed else "")
    return results
