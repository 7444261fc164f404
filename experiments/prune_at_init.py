"""Pruning at initialization, and the ablations of Frankle et al. 2021.

For each target density (by default those of the lottery levels 1..levels), the
freshly initialized network of a trial (its seed's level-0 initialization) is
pruned once by the configured score (``prune_scores``: snip, grasp, synflow,
magnitude_at_init, random, ...) and selection, reading the initial weights as
the weights being pruned, to exactly the weights iterative pruning keeps at
that level; then it trains once. Runs land in the trial's layout,
``{trial}/{level}/prune_at_init_{score}[_{ablation}]/``, so the reader, the
figures and the report find them beside the lottery runs of the same trial.

The ablations of "Pruning neural networks at initialization: why are we
missing the mark?" (Frankle et al. 2021) apply to any such mask:

* ``shuffle``: the mask shuffled within each layer (the same count per layer,
  at random positions; ``controls.random_masks``), the original initialization;
* ``reinit``: the mask, the surviving weights drawn afresh from the model's
  initializer (``controls.reinit_seed``);
* ``invert``: the scores negated (``pruning.Inverted``): the highest go first.

Each run is locked while it trains, is read back when complete and is refused
if it was made with other settings, naming them.
"""

import dataclasses
import logging
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from lottery_ticket.experiments import build
from lottery_ticket.experiments import kinds
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig, parse_level_list
from lottery_ticket.foundations import controls
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import pruning
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

EXPERIMENT_NAME = "prune_at_init"
ABLATIONS = tuple(kinds.PRUNE_AT_INIT_ABLATIONS)
# The scores whose runs the figures know by name (others are read all the same).
SCORES = kinds.PRUNE_AT_INIT_SCORES
SELECTIONS = ("layerwise", "global")


@dataclasses.dataclass
class PruneAtInitResult:
    """One run: its masks, its metrics (metrics.json's) and whether it was read back.

    Attributes:
      masks: layer -> the pruned mask the run trained with.
      metrics: the run's metrics, as in metrics.json.
      resumed: True when read back from a completed run, not trained now.
    """
    masks: Network
    metrics: Mapping[str, Any]
    resumed: bool


def check_ablation(ablation: Optional[str]) -> Optional[str]:
    """The ablation checked: None for none.

    None for no ablation ('none' or None), else the ablation; ValueError naming
    the choices for an unknown one.

    Args:
      ablation: None, 'none', or one of ABLATIONS ('shuffle', 'reinit', 'invert').

    Raises:
      ValueError: an unknown ablation.
    """
    if ablation in (None, "", "none"):
        return None
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}: choose none, "
                         f"{', '.join(ABLATIONS)} (--ablation).")
    return ablation


def run_name(scores: str, ablation: Optional[str] = None) -> str:
    """The run directory name of a score's runs (and of an ablation of them).

    Args:
      scores: the score's name.
      ablation: None, or one of ABLATIONS.
    """
    ablation = check_ablation(ablation)
    return f"{EXPERIMENT_NAME}_{scores}" + (f"_{ablation}" if ablation else "")


def run_names(scores: Iterable[str] = SCORES) -> Tuple[str, ...]:
    """Every run name of `scores`, without and with each ablation.

    Args:
      scores: score names.
    """
    return tuple(run_name(score, ablation) for score in scores
                 for ablation in (None,) + ABLATIONS)


def pruning_rule(config: ExperimentConfig, trial_seed: int,
                 ablation: Optional[str] = None) -> pruning.PruningRule:
    """The one-shot rule that prunes the initialization to a lottery level's count.

    It is called as prune(masks, initial, level=k, context=...); its scores are inverted for
    the 'invert' ablation.

    Args:
      config: the experiment's configuration (its pruning strategy, rates and score).
      trial_seed: the trial's seed (see build.scores_seed).
      ablation: None, or one of ABLATIONS ('invert' inverts the scores).

    Raises:
      ValueError: a selection other than layerwise or global, a bad score or seed.
    """
    if config["pruning"] not in SELECTIONS:
        raise ValueError(f"pruning at initialization takes --pruning=layerwise or global, "
                         f"not {config['pruning']!r}.")
    scores: Any = config["prune_scores"]
    score_config = pruning.score_settings(scores, lambda field: config[field])
    if check_ablation(ablation) == "invert":
        scores, score_config = pruning.Inverted(scores, score_config), None
    return pruning.PruningRule(dict(config["prune_percents"]), selection=config["pruning"],
                               scores=scores, seed=build.scores_seed(config, trial_seed),
                               oneshot=True, score_config=score_config)


def masks_at_init(config: ExperimentConfig, level: int, seed: int = 0,
                  ablation: Optional[str] = None, presets: save_restore.NetworkLike = None
                  ) -> Tuple[Network, Optional[Network], int]:
    """The masks and starting weights of one prune-at-init run.

    Args:
      config: the settings (score, selection, percents, data, model).
      level: the lottery level whose density to reach.
      seed: the trial's seed (its level-0 initialization and batch order).
      ablation: None, 'shuffle', 'reinit' or 'invert'.
      presets: the trial's level-0 presets, if it had any.

    Returns:
      The triple (masks, the presets the run starts from or None for the
      model's own draw, the model seed).
    """
    ablation = check_ablation(ablation)
    rule = pruning_rule(config, seed, ablation)
    dataset = build.dataset(config, int(seed))
    model = build.model(config, save_restore.standardize(presets), None, seed=seed)
    model.build(dataset.example_shape)
    initial = model.get_current_weights()
    dense = model.masks
    context = pruning.Context(
        dense, initial, initial=initial, level=level, order=model.layer_names,
        model_fn=lambda weights, masks: build.model(config, weights, masks, seed=seed),
        dataset_fn=lambda: dataset)
    # At initialization the weights being pruned are the initial ones.
    masks = rule(dense, initial, level=level, context=context)
    if ablation == "shuffle":
        return controls.random_masks(masks, seed), initial, int(seed)
    if ablation == "reinit":
        return masks, None, controls.reinit_seed(seed)
    return masks, initial, int(seed)


def run_prune_at_init(trial_dir: str, config: ExperimentConfig,
                      levels: Optional[Iterable[int]] = None, seed: int = 0,
                      ablation: Optional[str] = None,
                      presets: save_restore.NetworkLike = None,
                      progress: Progress = None) -> Dict[int, PruneAtInitResult]:
    """Runs (or resumes) pruning at initialization to each level's density in a trial.

    Args:
      trial_dir: the trial directory, e.g. results/lottery/trial1.
      config: the settings; prune_scores is the score at init.
      levels: the lottery levels whose densities to reach (default 1..levels).
      seed: the trial's seed.
      ablation: None, 'shuffle', 'reinit' or 'invert' (see the module docstring).
      presets: the trial's level-0 presets, if it had any.
      progress: as in trainer.train (False: show nothing).

    Returns:
      level -> PruneAtInitResult.

    Raises:
      ValueError: bad levels, ablation, selection or settings, rewind_iteration
        > 0 (there is nothing to rewind to at init), or a complete run made with
        other settings (naming them), before that run trains.
      runs.LockedError: another process is using one of the runs.
    """
    levels = parse_level_list(levels if levels is not None
                              else range(1, max(1, config["levels"]) + 1))
    ablation = check_ablation(ablation)
    build.check(config)
    if config["rewind_iteration"]:
        raise ValueError(
            f"rewind_iteration is {config['rewind_iteration']}, but pruning at "
            "initialization prunes and trains from iteration 0: pass --rewind_iteration=0 "
            "(the figure compares it with rewound lottery tickets of other trees).")
    name = run_name(config["prune_scores"], ablation)
    rule = pruning_rule(config, seed, ablation)  # a bad score is refused before any work
    run_info = {"config": config.to_json(), "seed": int(seed), "experiment_name": name,
                "data": build.data_identity(config), "presets": single_run.source_of(presets),
                "ablation": ablation or "none", "schedule": "prune_at_init",
                "pruning_rule": rule.get_config()}
    results = {}
    for position, level in enumerate(levels):
        run_dir = paths.run(trial_dir, level, name)
        recorded = dict(run_info, level=level, run_id="")
        with runs.lock(run_dir):
            saved = single_run.load_if_complete(run_dir, recorded, with_metrics=True)
            if saved is not None:
                results[level] = PruneAtInitResult(saved[2], saved[3], True)
                logger.info("%s level %d is already complete; reading it back.", name, level)
                continue
            masks, start, model_seed = masks_at_init(config, level, seed, ablation, presets)
            dataset = build.dataset(config, int(seed))
            model = build.model(config, start, masks, seed=model_seed)
            build.check_fit(config, dataset, model, masks, start)
            trained = single_run.train_model(
                dataset, model, run_dir, config, recorded,
                progress_label=f"{name} level {level} | ", progress=progress)
            results[level] = PruneAtInitResult(masks, trained.metrics, False)
        logger.info("%s level %d: %.2f%% of weights remain", name, level,
                    100 * lottery.remaining_fraction(masks))
    return results
