"""The iterative-pruning lottery ticket experiment on LeNet-300-100.

The generic trial is ``experiments.lottery.run_trial``; this function keeps the
family's argument names and defaults. Runs land in
``{output_dir}/{level}/{experiment_name}/``; calling it again resumes after the
last completed level, and more levels extend the trial.
"""

from typing import Dict, Mapping, Optional

from lottery_ticket.experiments import lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants


def run_experiment(output_dir: str, mnist_location: Optional[str] = None,
                   config: Optional[ExperimentConfig] = None,
                   levels: Optional[int] = None,
                   prune_percents: Optional[Mapping[str, float]] = None,
                   experiment_name: str = constants.EXPERIMENT_NAME,
                   seed: int = 0, presets: save_restore.NetworkLike = None,
                   ) -> Dict[int, experiment.LevelResult]:
    """Runs (or resumes) one trial of the lottery ticket experiment.

    Args:
      output_dir: the trial directory.
      mnist_location: directory of the IDX files; default the configuration's.
      config: the configuration (default constants.DEFAULT); `levels`,
        `prune_percents` and `mnist_location`, where given, replace its fields.
      levels: pruning levels after level 0; default the configuration's.
      prune_percents: layer -> fraction of surviving weights pruned per level;
        default the configuration's.
      experiment_name: the run directories' name within each level.
      seed: seeds the level-0 initialization and the batch order.
      presets: optional level-0 initial weights (dict or directory).

    Returns:
      level -> experiment.LevelResult.
    """
    changes = {name: value for name, value in (("data_location", mnist_location),
                                               ("levels", levels),
                                               ("prune_percents", prune_percents))
               if value is not None}
    config = (config or constants.DEFAULT).replace(**changes)
    return lottery.run_trial(output_dir, config, seed, presets, experiment_name)
