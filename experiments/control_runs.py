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

``run_controls`` trains several runs of one control (the paper's three per
ticket and level, one seed each) together as a population
(``foundations.population.train_population``): each run gets the model, the
recorded identity and the files its single control run would have, and a run
already complete is read back, as rerunning the single control would.
"""

import contextlib
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments import kinds
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import lockstep
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import controls
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import population
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.model_base import BIAS_SUFFIX
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

REINITIALIZE_MODES = controls.REINITIALIZE_MODES
# The controls by their run directories' name: reinitialize's modes, then the others
# (the control kinds of experiments.kinds).
CONTROLS = kinds.control_names()


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


class _ControlRun(NamedTuple):
    """What one control run trains, before it is trained alone or in a population."""
    control: str
    config: ExperimentConfig
    masks: Network
    presets: Optional[Network]
    seed: int
    sources: Mapping[str, Any]
    train_order_seed: Optional[int]
    model_seed: Optional[int] = None

    @property
    def order_seed(self) -> int:
        return int(self.seed if self.train_order_seed is None else self.train_order_seed)

    @property
    def init_seed(self) -> int:
        return int(self.seed if self.model_seed is None else self.model_seed)

    def control_info(self) -> Dict[str, Any]:
        """The run_info a control adds to single_run.train's."""
        info = {"control": self.control, "control_seed": int(self.seed)}
        info.update({key: single_run.source_of(value) for key, value in self.sources.items()})
        return info


def _control_runs(control: str, masks: save_restore.NetworkLike,
                  presets: save_restore.NetworkLike, seeds: Sequence[int],
                  config: Optional[ExperimentConfig], train_order_seed: Optional[int],
                  override: Iterable[str]) -> List[_ControlRun]:
    """One _ControlRun per seed: the control's configuration (resolved and checked
    once) and each seed's transform of the ticket. The single controls and
    run_controls both go through here, so a population member is built exactly
    as its single run."""
    if control not in CONTROLS:
        raise ValueError(f"control {control!r} is not one of {CONTROLS}.")
    config = resolve(masks, config, override)
    seeds = [int(seed) for seed in seeds]
    if control in REINITIALIZE_MODES:
        mask_values = ticket_masks(masks)
        sources = {"ticket_masks": masks, "ticket_presets": presets}
        if control == "reinit":
            return [_ControlRun(control, config, mask_values, None, seed, sources,
                                train_order_seed, controls.reinit_seed(seed))
                    for seed in seeds]
        if presets is None:
            raise ValueError(f"mode {control!r} samples from the ticket's initial weights: "
                             "pass --presets=DIR (the lottery run's initial/).")
        checked = ticket_presets(presets, mask_values)
        snapshot = _rewind_snapshot(masks, config)
        return [_ControlRun(control, config, mask_values, _with_rewound_biases(
            controls.reuse_presets(mask_values, checked, seed,
                                   keep_sign=control == "reuse_sign"), snapshot),
                            seed, sources, train_order_seed, seed) for seed in seeds]
    if control == "rearrange":
        mask_values = ticket_masks(masks)
        checked = ticket_presets(presets, mask_values)
        snapshot = _rewind_snapshot(masks, config)
        made = []
        for seed in seeds:
            new_masks, new_presets = controls.rearrange(mask_values, checked, seed)
            made.append(_ControlRun(control, config, new_masks,
                                    _with_rewound_biases(new_presets, snapshot), seed,
                                    {"ticket_masks": masks, "ticket_presets": presets},
                                    train_order_seed))
        return made
    snapshot = _rewind_snapshot(masks, config)  # random_prune
    if snapshot is not None and isinstance(presets, (str, os.PathLike)) and (
            os.path.abspath(os.fspath(presets)) != os.path.abspath(snapshot[0])):
        raise ValueError(
            f"the ticket was rewound to iteration {config['rewind_iteration']} (late "
            f"resetting), so random_prune starts from that snapshot: pass "
            f"--presets={snapshot[0]}, not {presets}.")
    original = save_restore.standardize(presets)
    mask_values = ticket_masks(masks)
    made = []
    for seed in seeds:
        new_masks = controls.random_masks(mask_values, seed)
        for name, mask in new_masks.items():
            if name in original and np.any(np.asarray(original[name])[mask != 0] == 0):
                raise ValueError(
                    f"presets for layer {name!r} are 0 at positions the random mask keeps: "
                    "they look pruned. Pass the dense level-0 initial weights "
                    "({trial}/0/lottery/initial), not the ticket's.")
        made.append(_ControlRun(control, config, new_masks, original, seed,
                                {"ticket_masks": masks, "original_presets": presets},
                                train_order_seed))
    return made


def _train_control(output_dir: str, run: _ControlRun) -> Tuple[Network, Network]:
    _check_run_name(run.control, output_dir)
    return single_run.train(
        output_dir, run.config, masks=run.masks, presets=run.presets, seed=run.init_seed,
        train_order_seed=run.order_seed, run_info=run.control_info())


def _identity(run: _ControlRun, data: Mapping[str, Any]) -> Dict[str, Any]:
    """The run_info single_run.train records for `run` (called as _train_control
    calls it), for a population member to record the same and be read back by
    a rerun of the single control (and the other way round)."""
    return single_run.run_identity(run.config, run.init_seed, run.order_seed, run.masks,
                                   run.presets, data, run.control_info())


def run_controls(control: str, output_dirs: Sequence[str], masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike = None, *, seeds: Sequence[int],
                 config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = (),
                 progress: Progress = None) -> List[Tuple[Network, Network]]:
    """Runs (or reads back) one control run per seed, training them together.

    Run k is the run that the single control (reinitialize with mode
    `control`, rearrange or random_prune) makes with output_dirs[k] and
    seeds[k]: the same transform of the ticket, the same model seed and batch
    order, the same configuration (resolved and checked against the ticket as
    there) and the same run_info, plus ``"population": {"size", "member"}``.
    A run already complete with that identity is read back (one with another
    identity is a ValueError, before anything trains), and the others train
    together in one ``foundations.population.train_population`` call, each
    under its run directory's lock (held over all runs from the identity
    checks to the end). Their files equal the single runs' (masks exactly,
    weights and metrics to float rounding).

    Args:
      control: the runs' name: reinit, reuse, reuse_sign (reinitialize's
        modes), rearrange or random_prune.
      output_dirs: the run directories, one per seed, e.g.
        {trial}/{level}/{control}{run_id} for run_id 1..K.
      masks, presets, config, train_order_seed, override: as in the single
        control (reinitialize, rearrange, random_prune), for every run.
      seeds: each run's control seed (the argfiles use 1000 * trial + run_id).
      progress: as in trainer.train (False: show nothing).

    Returns:
      (initial_weights, final_weights) per run, in seed order.

    Raises:
      ValueError: a bad control or setting, seeds that repeat, seeds and
        directories that do not pair up or a directory used twice, or a
        complete run with another identity (all before any training).
      runs.LockedError: another process is using one of the run directories.
      population.PopulationDivergedError: some runs diverged (recorded as such;
        the others completed).
    """
    output_dirs = [os.fspath(directory) for directory in output_dirs]
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("run_controls needs at least one seed (one per control run).")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds {seeds} repeat: each control run needs its own seed "
                         "(a repeated seed would train the same run twice).")
    if len(output_dirs) != len(seeds):
        raise ValueError(f"{len(output_dirs)} output directories for {len(seeds)} seeds: "
                         "give one directory per control run.")
    if len({os.path.abspath(directory) for directory in output_dirs}) != len(output_dirs):
        raise ValueError("two control runs share an output directory: each needs its own.")
    members = _control_runs(control, masks, presets, seeds, config, train_order_seed,
                            override)
    for output_dir in output_dirs:
        _check_run_name(control, output_dir)
    config = members[0].config
    build.check(config)
    data = build.data_identity(config)  # one checksum pass for all the runs
    identities = [_identity(member, data) for member in members]
    results: List[Optional[Tuple[Network, Network]]] = [None] * len(members)
    with contextlib.ExitStack() as locks:
        for output_dir in output_dirs:
            locks.enter_context(runs.lock(output_dir))
        pending = []
        for index, (output_dir, identity) in enumerate(zip(output_dirs, identities)):
            saved = single_run.load_if_complete(output_dir, identity)
            if saved is None:
                pending.append(index)
            else:
                logger.info("%s is already complete; reading it back.", output_dir)
                results[index] = (saved[0], saved[1])
        if pending:
            _train_together([members[i] for i in pending], [output_dirs[i] for i in pending],
                            [identities[i] for i in pending], progress, results, pending)
    return results


def _train_together(members: Sequence[_ControlRun], output_dirs: Sequence[str],
                    identities: Sequence[Mapping[str, Any]], progress: Progress,
                    results: List, indices: Sequence[int]) -> None:
    """Trains `members` as one population, as single_run.train_model trains each,
    storing each one's TrainResult at its index in `results`."""
    config = members[0].config
    datasets = lockstep.datasets(config, [member.order_seed for member in members])
    models = []
    for member, dataset in zip(members, datasets):
        model = build.model(config, member.presets, member.masks, seed=member.init_seed)
        build.check_fit(config, dataset, model, member.masks, member.presets)
        models.append(model)
    arguments = single_run.training_arguments(config, population=True)
    trained = population.train_population(
        datasets, models, arguments.pop("optimizer_fn"), arguments.pop("training_len"),
        output_dirs, run_infos=identities, progress=progress,
        progress_label=f"{members[0].control} | {len(members)} runs | ", **arguments)
    for index, result in zip(indices, trained):
        results[index] = result


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
    (run,) = _control_runs(mode, masks, presets, [seed], config, train_order_seed, override)
    return _train_control(output_dir, run)


def rearrange(output_dir: str, masks: save_restore.NetworkLike,
              presets: save_restore.NetworkLike, seed: int = 0,
              config: Optional[ExperimentConfig] = None,
              train_order_seed: Optional[int] = None, override: Iterable[str] = ()
              ) -> Tuple[Network, Network]:
    """Trains the ticket's initial values moved to random positions in each layer.

    Args as in reinitialize; `presets` is the ticket's initial weights.
    """
    (run,) = _control_runs("rearrange", masks, presets, [seed], config, train_order_seed,
                           override)
    return _train_control(output_dir, run)


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
    (run,) = _control_runs("random_prune", masks, presets, [seed], config,
                           train_order_seed, override)
    return _train_control(output_dir, run)


CONTROL_FUNCTIONS = {"reinitialize": reinitialize, "rearrange": rearrange,
                     "random_prune": random_prune}
