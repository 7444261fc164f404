"""The control experiments of section 2.2, from a ticket and a configuration.

Each control turns a ticket's (masks, initial weights) into its own with a
numpy transform from ``foundations.controls`` and trains them through
``single_run.train``:

| control | masks | initial values |
| --- | --- | --- |
| reinit | the ticket's | a fresh draw from the model's initializer |
| reuse | the ticket's | sampled from the ticket's initial values, per layer |
| reuse_sign | the ticket's | as reuse, keeping the sign at each position |
| rearrange | same count per layer, random positions | the ticket's values, moved |
| random_prune | same count per layer, random positions | the level-0 initialization |

A control trains like its ticket: by default its configuration is the one the
ticket recorded in its done.json (``ticket_config``), and a setting asked for
that differs from the ticket's is refused unless it is named as an override
(``config_for_control``).
"""

import os
from typing import Any, Iterable, Mapping, Optional, Tuple

import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import controls
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.model_base import BIAS_SUFFIX
from lottery_ticket.foundations.save_restore import Network


REINITIALIZE_MODES = controls.REINITIALIZE_MODES


def ticket_run(masks: save_restore.NetworkLike) -> Optional[str]:
    """The run directory a masks directory belongs to, if it is a complete run."""
    if not isinstance(masks, (str, os.PathLike)):
        return None
    run = os.path.dirname(os.path.abspath(os.fspath(masks)).rstrip(os.sep))
    return run if runs.is_complete(run) else None


def ticket_config(ticket_directory: str) -> ExperimentConfig:
    """The configuration a complete run recorded in its done.json (any format).

    Settings the run does not record (it predates them) take the dataclasses'
    defaults, as when comparing runs; a location it does not record is ''.

    Raises:
      FileNotFoundError: the run is not complete.
      ValueError: its done.json records no configuration, or a bad one.
    """
    info = runs.read_done(ticket_directory).get("run_info", {})
    recorded = info.get("config") if isinstance(info, Mapping) else None
    if not isinstance(recorded, Mapping):
        raise ValueError(f"{ticket_directory} records no configuration in its "
                         f"{runs.DONE_FILENAME}; pass the settings explicitly.")
    values = dict(recorded)
    if "prune_percents" in info:  # format 1 kept it beside the configuration
        values["prune_percents"] = info["prune_percents"]
    try:
        return ExperimentConfig.from_json(values, ExperimentConfig().replace(data_location=""))
    except ValueError as error:
        raise ValueError(f"the configuration recorded in {ticket_directory}: {error}") \
            from error


def _check_override(override: Iterable[str]) -> set:
    override = set(override)
    fields = ExperimentConfig.fields()
    for name in sorted(override - set(fields) - {"data"}):
        raise ValueError(f"--override names {config_lib.unknown_setting_message(name, fields)}")
    return override


def check_like_ticket(config: ExperimentConfig, ticket: ExperimentConfig,
                      override: Iterable[str] = (), ticket_directory: str = "the ticket"
                      ) -> None:
    """Raises ValueError if `config` differs from the ticket's in a setting that
    changes results and that `override` does not name: a control trains like its
    ticket unless told otherwise."""
    free = set(ExperimentConfig.non_identity_fields()) | _check_override(override)
    conflicts = [name for name in ExperimentConfig.fields()
                 if name not in free and config[name] != ticket[name]]
    if conflicts:
        details = "; ".join(f"--{name}: ticket {ticket[name]!r}, asked {config[name]!r}"
                            for name in conflicts)
        raise ValueError(
            f"a control trains like its ticket, but {details} (ticket: "
            f"{ticket_directory}). Leave the setting out to use the ticket's value, or "
            f"pass --override={','.join(conflicts)} to train the control differently.")


def config_for_control(ticket: ExperimentConfig, given: Mapping[str, Any],
                       override: Iterable[str] = (), ticket_directory: str = "the ticket"
                       ) -> ExperimentConfig:
    """The ticket's configuration with the settings given explicitly (flag name ->
    value); a given setting that differs is refused unless `override` names it
    (see check_like_ticket)."""
    config = ticket.replace(**given)
    check_like_ticket(config, ticket, override, ticket_directory)
    return config


def resolve(masks: save_restore.NetworkLike, config: Optional[ExperimentConfig] = None,
            override: Iterable[str] = ()) -> ExperimentConfig:
    """A control's configuration, checked against its ticket's.

    The ticket is the complete run holding `masks` (a masks/ directory). With
    a ticket, `config` defaults to the ticket's configuration, and a given
    `config` may differ from it only in the settings `override` names; the
    data must be the ticket's (same files, by checksum) unless `override`
    names 'data'. Without a ticket (masks given as a dict, say), `config` is
    required.

    Raises:
      ValueError: naming each difference, or the missing configuration.
    """
    override = _check_override(override)
    ticket = ticket_run(masks)
    if ticket is None:
        if config is None:
            raise ValueError(
                "no configuration given and the masks are not inside a complete run whose "
                "done.json records one: pass config=..., or the masks/ directory of a "
                "finished lottery run.")
        return config
    recorded = ticket_config(ticket)
    if config is None:
        config = recorded
    check_like_ticket(config, recorded, override, ticket)
    ticket_data = runs.read_done(ticket).get("run_info", {}).get("data")
    if ticket_data is not None and "data" not in override and config["data_location"]:
        asked = build.data_identity(config)
        if asked != ticket_data:
            raise ValueError(
                f"the data at {config['data_location']} is not the data the ticket "
                f"{ticket} trained on (ticket: {ticket_data}, here: {asked}); point "
                "--data_location at the ticket's data, or pass --override=data.")
    return config


def ticket_masks(masks: save_restore.NetworkLike) -> Network:
    """A ticket's masks, checked: 0/1 values, and every layer keeps a weight."""
    values = save_restore.standardize(masks)
    for layer, mask in values.items():
        mask = np.asarray(mask)
        if not np.isin(np.unique(mask), (0, 1)).all():
            raise ValueError(f"the ticket's mask for layer {layer!r} holds values other than "
                             "0 and 1: masks mark surviving weights with 1.")
        if not mask.any():
            raise ValueError(f"the ticket's mask for layer {layer!r} keeps no weight: a "
                             "network with an empty layer cannot learn.")
    return values


def ticket_presets(presets: save_restore.NetworkLike, masks: Network) -> Network:
    """A ticket's initial weights, checked to belong to its masks: nonzero at every
    surviving position (initial weights of another level's run are 0 there)."""
    values = save_restore.standardize(presets)
    for layer, mask in masks.items():
        if layer in values and np.shape(values[layer]) == np.shape(mask):
            zeros = int(np.count_nonzero(np.asarray(values[layer])[np.asarray(mask) != 0] == 0))
            if zeros:
                raise ValueError(
                    f"the presets for layer {layer!r} are 0 at {zeros} positions the "
                    "ticket's mask keeps: they look like another run's initial weights. "
                    "Pass the initial/ of the run whose masks/ you pass.")
    return values


def _check_run_name(control: str, output_dir: str) -> None:
    """Inside a trial, a control's directory is {control}{run_id}: the report reads
    runs by their directory's name, so a reinit run named 'lottery' would be
    counted as a ticket."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(output_dir)))
    name, run_id = paths.split_run_name(os.path.basename(os.path.abspath(output_dir)))
    if parent.isdigit() and name != control:
        raise ValueError(
            f"--output_dir={output_dir} is in a level directory, where the report reads a "
            f"run's kind from its name; a {control} run must be named {control}{{run_id}} "
            f"(e.g. {control}1), not {os.path.basename(os.path.abspath(output_dir))!r}.")


def _rewind_snapshot(masks: save_restore.NetworkLike, config: ExperimentConfig
                     ) -> Optional[Tuple[str, Network]]:
    """(its directory, the snapshot) that a ticket rewound to K > 0 started from:
    level 0's rewind{K}/ in the ticket's trial; None for a ticket not rewound or
    not given as a run's masks/ directory."""
    ticket = ticket_run(masks)
    rewind = config["rewind_iteration"]
    if not rewind or ticket is None:
        return None
    name, _ = paths.split_run_name(os.path.basename(ticket))
    level0 = paths.run(os.path.dirname(os.path.dirname(ticket)), 0, name)
    return paths.rewind(level0, rewind), lottery.rewound_weights(level0, rewind)


def _with_rewound_biases(presets: Network, snapshot: Optional[Tuple[str, Network]]
                         ) -> Network:
    """The ticket's kernels with the biases its rewound start had (initial/ holds
    kernels only), so that a control differs from its ticket only in what it
    randomizes."""
    if snapshot is None:
        return presets
    biases = {key: value for key, value in snapshot[1].items()
              if key.endswith(BIAS_SUFFIX) and key not in presets}
    return dict(presets, **biases)


def _train_control(control: str, output_dir: str, config: ExperimentConfig,
                   masks: Network, presets: Optional[Network], seed: int,
                   sources: Mapping[str, Any], train_order_seed: Optional[int],
                   model_seed: Optional[int] = None) -> Tuple[Network, Network]:
    _check_run_name(control, output_dir)
    info = {"control": control, "control_seed": int(seed)}
    info.update({key: single_run.source_of(value) for key, value in sources.items()})
    return single_run.train(
        output_dir, config, masks=masks, presets=presets,
        seed=int(seed if model_seed is None else model_seed),
        train_order_seed=int(seed if train_order_seed is None else train_order_seed),
        run_info=info)


def reinitialize(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike = None, mode: str = "reinit",
                 seed: int = 0, config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = ()
                 ) -> Tuple[Network, Network]:
    """Trains the ticket's masks from a random initialization.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/reinit1.
      masks: the ticket's masks (dict or directory, e.g. .../lottery/masks).
      presets: the ticket's initial weights (.../lottery/initial); needed by
        reuse and reuse_sign.
      mode: reinit (a fresh draw; its model seed comes from
        controls.reinit_seed so it never repeats a lottery seed), reuse or
        reuse_sign.
      seed: the control's seed; other seeds give other initializations.
      config: the configuration; default the ticket's (read from the run
        that holds `masks`). It may differ from the ticket's only in the
        settings `override` names (see resolve).
      train_order_seed: batch order; default `seed`.
      override: settings (or 'data') in which the control may differ from
        its ticket.

    Returns:
      (initial_weights, final_weights).
    """
    if mode not in REINITIALIZE_MODES:
        raise ValueError(f"mode {mode!r} is not one of {REINITIALIZE_MODES}.")
    config = resolve(masks, config, override)
    mask_values = ticket_masks(masks)
    if mode == "reinit":
        new_presets, model_seed = None, controls.reinit_seed(int(seed))
    else:
        if presets is None:
            raise ValueError(f"mode {mode!r} samples from the ticket's initial weights: "
                             "pass --presets=DIR (the lottery run's initial/).")
        new_presets = _with_rewound_biases(
            controls.reuse_presets(mask_values, ticket_presets(presets, mask_values),
                                   int(seed), keep_sign=mode == "reuse_sign"),
            _rewind_snapshot(masks, config))
        model_seed = int(seed)
    return _train_control(mode, output_dir, config, mask_values, new_presets, int(seed),
                          {"ticket_masks": masks, "ticket_presets": presets},
                          train_order_seed, model_seed)


def rearrange(output_dir: str, masks: save_restore.NetworkLike,
              presets: save_restore.NetworkLike, seed: int = 0,
              config: Optional[ExperimentConfig] = None,
              train_order_seed: Optional[int] = None, override: Iterable[str] = ()
              ) -> Tuple[Network, Network]:
    """Trains the ticket's initial values moved to random positions in each layer.

    Args as in reinitialize; `presets` is the ticket's initial weights.
    """
    config = resolve(masks, config, override)
    mask_values = ticket_masks(masks)
    new_masks, new_presets = controls.rearrange(
        mask_values, ticket_presets(presets, mask_values), int(seed))
    new_presets = _with_rewound_biases(new_presets, _rewind_snapshot(masks, config))
    return _train_control("rearrange", output_dir, config, new_masks, new_presets, int(seed),
                          {"ticket_masks": masks, "ticket_presets": presets},
                          train_order_seed)


def random_prune(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike, seed: int = 0,
                 config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = ()
                 ) -> Tuple[Network, Network]:
    """Trains random masks of the ticket's per-layer size from the original init.

    Args as in reinitialize; `masks` is read only for its per-layer counts and
    `presets` must be the dense level-0 initial weights ({trial}/0/lottery/initial).

    Raises:
      ValueError: `presets` has zeros where the random mask keeps weights,
        i.e. masked initial weights were passed instead of the level-0 ones.
    """
    config = resolve(masks, config, override)
    snapshot = _rewind_snapshot(masks, config)
    if snapshot is not None and isinstance(presets, (str, os.PathLike)) and (
            os.path.abspath(os.fspath(presets)) != os.path.abspath(snapshot[0])):
        raise ValueError(
            f"the ticket was rewound to iteration {config['rewind_iteration']} (late "
            f"resetting), so random_prune starts from that snapshot: pass "
            f"--presets={snapshot[0]}, not {presets}.")
    original = save_restore.standardize(presets)
    new_masks = controls.random_masks(ticket_masks(masks), int(seed))
    for name, mask in new_masks.items():
        if name in original and np.any(np.asarray(original[name])[mask != 0] == 0):
            raise ValueError(
                f"presets for layer {name!r} are 0 at positions the random mask keeps: "
                "they look pruned. Pass the dense level-0 initial weights "
                "({trial}/0/lottery/initial), not the ticket's.")
    return _train_control("random_prune", output_dir, config, new_masks, original,
                          int(seed), {"ticket_masks": masks, "original_presets": presets},
                          train_order_seed)


CONTROL_FUNCTIONS = {"reinitialize": reinitialize, "rearrange": rearrange,
                     "random_prune": random_prune}
