"""Supermasks (Zhou et al. 2019): how well a mask alone does, without training.

A trial's masks at each level are evaluated on the network's initial weights,
with no training: the surviving weights keep

* their initial values (``init``: initial kernel * mask), or
* a **signed constant** (``signed_constant``): sign(initial weight) times the
  standard deviation of the layer's initial weights (level 0's, dense), as
  Zhou et al.'s "signed constant" initialization.

Biases keep their initial values. The initial weights are those a ticket is
reset to: level 0's initial/ (its rewind{K}/ snapshot for a trial rewound to
K). With a trial pruned by one of Zhou's mask criteria (``--prune_scores=
movement`` ..., ``foundations.pruning.criteria``), comparing trials compares
the criteria. ``evaluate_trial`` writes ``{trial}/supermask.json`` (one entry
per level; rerunning adds new levels and refuses other settings).
"""

import os
from typing import Any, Dict, Mapping, Optional, Set, Tuple

import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import tickets
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.save_restore import Network

RECORD = "supermask.json"
INITIALIZATIONS = ("init", "signed_constant")


def supermask_weights(masks: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray],
                      signed_constant: bool = False,
                      reference: Optional[Mapping[str, np.ndarray]] = None) -> Network:
    """The masked network's weights without training.

    Args:
      masks: layer -> 0/1 mask.
      initial: layer -> initial kernel, and '{layer}.bias' -> bias (kept as is).
      signed_constant: replace each kernel weight by sign(initial) * the
        standard deviation of `reference`'s kernel of that layer.
      reference: layer -> the kernels whose spread sets the constant (default
        `initial`; pass the dense level-0 initialization).

    Returns:
      layer -> kernel * mask (float32), biases unchanged.

    Raises:
      ValueError: a mask's layer has no initial kernel, or shapes differ.
    """
    reference = initial if reference is None else reference
    weights = {name: np.asarray(value, np.float32) for name, value in initial.items()}
    for name, mask in masks.items():
        if name not in initial or np.shape(initial[name]) != np.shape(mask):
            raise ValueError(f"layer {name!r}: the initial weights do not match its mask "
                             f"({np.shape(initial.get(name))} vs {np.shape(mask)}).")
        kernel = np.asarray(initial[name], np.float64)
        if signed_constant:
            kernel = np.sign(kernel) * float(np.std(np.asarray(reference[name], np.float64)))
        weights[name] = (kernel * np.asarray(mask, np.float64)).astype(np.float32)
    return weights


def evaluate_supermask(config: ExperimentConfig, masks: Mapping[str, np.ndarray],
                       initial: Mapping[str, np.ndarray], *, signed_constant: bool = False,
                       reference: Optional[Mapping[str, np.ndarray]] = None,
                       split: str = "test") -> Tuple[float, float]:
    """(loss, accuracy) on `split` of the untrained masked network (supermask_weights).

    Args:
      config: the architecture and data.
      masks: as in supermask_weights.
      initial: as in supermask_weights.
      signed_constant: as in supermask_weights.
      reference: as in supermask_weights.
      split: 'test', 'validate' or 'train'.
    """
    from lottery_ticket.foundations import trainer  # TensorFlow only when evaluating

    weights = supermask_weights(masks, initial, signed_constant, reference)
    dataset = build.dataset(config, 0)
    model = build.model(config, presets=weights, masks=dict(masks), seed=0)
    return trainer.evaluate(model, dataset, split, xla=config["xla"])


def _reset_weights(level0: str, config: ExperimentConfig) -> Network:
    if config["rewind_iteration"]:
        return lottery.rewound_weights(level0, config["rewind_iteration"])
    return save_restore.restore_network(paths.initial(level0))


def evaluate_trial(trial_dir: str, *, lottery_name: str = "lottery", split: str = "test",
                   data_location: Optional[str] = None) -> Dict[str, Any]:
    """Evaluates the supermask of every complete level of a trial; writes supermask.json.

    Args:
      trial_dir: a lottery trial.
      lottery_name: the trial's run name.
      split: the split evaluated.
      data_location: where the data is, if not where level 0 recorded it.

    Returns:
      The record, with 'criterion' (the trial's prune_scores), 'settings' and
      'levels': per level {'level', 'remaining', 'init': {'loss', 'accuracy'},
      'signed_constant': {...}}, by level.

    Raises:
      ValueError: no complete level 0, or a record made with other settings.
    """
    level0 = paths.run(trial_dir, 0, lottery_name)
    if not runs.is_complete(level0):
        raise ValueError(f"{level0} is not a complete run: run the lottery trial first.")
    config = tickets.ticket_config(level0)
    if data_location:
        config = config.replace(data_location=data_location)
    settings = {"split": split, "lottery_name": lottery_name,
                "config": {name: value for name, value in
                           ExperimentConfig.from_json(config.to_json()).to_json().items()}}
    ignore = set(ExperimentConfig.non_identity_fields())

    def identity(values: Mapping[str, Any]) -> Dict[str, Any]:
        flat = {k: v for part in values.get("config", {}).values() for k, v in part.items()}
        return {"split": values.get("split"), "lottery_name": values.get("lottery_name"),
                **{k: v for k, v in flat.items() if k not in ignore}}

    path = os.path.join(trial_dir, RECORD)
    with runs.lock(trial_dir, "supermask evaluation"):
        record = save_restore.read_json(path) if os.path.isfile(path) else None
        if record is not None and identity(record["settings"]) != identity(settings):
            old, new = identity(record["settings"]), identity(settings)
            changed = "; ".join(f"{key}: {old.get(key)!r} -> {new[key]!r}" for key in new
                                if old.get(key) != new[key])
            raise ValueError(f"{path} was made with other settings ({changed}); it is "
                             "never overwritten. Rerun with its settings, or delete it.")
        done = {entry["level"]: entry for entry in (record or {}).get("levels", [])}
        initial = _reset_weights(level0, config)
        dense = save_restore.restore_network(paths.initial(level0))
        level = 0
        while runs.is_complete(paths.run(trial_dir, level, lottery_name)):
            if level not in done:
                masks = save_restore.restore_network(
                    paths.masks(paths.run(trial_dir, level, lottery_name)))
                entry: Dict[str, Any] = {"level": level,
                                         "remaining": lottery.remaining_fraction(masks)}
                for name in INITIALIZATIONS:
                    loss, accuracy = evaluate_supermask(
                        config, masks, initial, signed_constant=name == "signed_constant",
                        reference=dense, split=split)
                    entry[name] = {"loss": float(loss), "accuracy": float(accuracy)}
                done[level] = entry
            level += 1
        levels = [done[key] for key in sorted(done)]
        if record is None or levels != record["levels"]:  # a finished record stays as is
            record = {"criterion": config["prune_scores"], "settings": settings,
                      "levels": levels}
            save_restore.write_json(path, record)
    return record


def command(family: Any) -> Any:
    """The `supermask` runner of a family (cli.flags.Command).

    Args:
      family: the experiment family (experiments.family.Family): its runners package and
        flag aliases.
    """
    from lottery_ticket.cli import runners  # pylint: disable=import-outside-toplevel
    from lottery_ticket.cli.flags import Command, Flag  # pylint: disable=C0415

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        trial_dir = values["trial_dir"]
        if values["output_dir"]:
            where = os.path.abspath(values["output_dir"]).rstrip(os.sep)
            if os.path.basename(where) != "supermask" or trial_dir:
                raise ValueError(f"--output_dir={values['output_dir']}: give "
                                 "{trial}/supermask (the form argfile batch lines need) "
                                 "and no --trial_dir, or --trial_dir alone.")
            trial_dir = os.path.dirname(where)
        elif not trial_dir:
            raise ValueError("pass --trial_dir=DIR (a lottery trial), or --output_dir="
                             "{trial}/supermask.")
        runners.configure(values["threads"])
        record = evaluate_trial(trial_dir, lottery_name=values["lottery_name"],
                                split=values["split"],
                                data_location=values["data_location"] or None)
        for entry in record["levels"]:
            print(f"level {entry['level']} ({100 * entry['remaining']:.2f}% remain): "
                  f"supermask accuracy {100 * entry['init']['accuracy']:.2f}% (initial "
                  f"weights), {100 * entry['signed_constant']['accuracy']:.2f}% (signed "
                  "constant)")

    location_aliases = tuple(alias for alias, field in family.flag_aliases.items()
                             if field == "data_location")
    own = [
        Flag("trial_dir", "", "A lottery trial (e.g. one pruned with "
             "--prune_scores=movement); its finished levels are evaluated.", str),
        Flag("output_dir", "", "{trial}/supermask instead of --trial_dir: the form "
             "argfile batch lines need (their log goes to {trial}/supermask.log).", str),
        Flag("split", "test", "The split evaluated.", str),
        Flag("lottery_name", "lottery", "Name of the trial's runs.", str),
        Flag("data_location", "", "Where the data is, if not where the trial recorded it.",
             str, aliases=location_aliases),
        Flag("threads", None, "TensorFlow threads (default: TensorFlow's).", Optional[int]),
    ]
    return Command(f"python -m {family.runners_package}.supermask",
                   "Supermask evaluation (Zhou et al. 2019): the test accuracy of each "
                   "level's masks on the initial weights, untrained, and with the signed "
                   "constant initialization; writes {trial}/supermask.json (rerunning adds "
                   "new levels).", own, run)

