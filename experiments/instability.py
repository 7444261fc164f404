"""Instability analysis: linear mode connectivity (Frankle et al. 2020).

From a network's weights at iteration k, two copies train to the end with
different SGD noise (batch order and dropout seeds); the test error is then
measured along the straight line between their final weights, kernels and
biases both: ``(1 - a) * w_a + a * w_b`` at `points` values of a in [0, 1],
endpoints included, under the network's masks. The **instability** is the
highest error on the path minus the mean of the two endpoints' errors; a
network is stable (the copies land in one linearly connected minimum) when it
is about 0.

A trial's analysis lives beside its runs::

    {trial}/{level}/instability_k{k}/
        a/, b/            the two copies (ordinary run directories)
        start/            the dense network trained 0..k (k > 0, when level 0
                          saved no rewind{k}/ snapshot), shared by every level
                          in {trial}/0/instability_k{k}/start
        instability.json  the record: every point's loss/accuracy/error, the
                          instability, k, the level, the copies' directories

The weights at iteration k are level 0's: its initial/ for k = 0, its
rewind{k}/ snapshot when the trial was run with --rewind_iteration=k, else a
start run trained 0..k with level 0's seeds and batch order. A ticket (level
L > 0) starts from those weights under its masks (found with the trial's own
rewinding setting). Each copy trains iterations k..N-1 as a rewound run does
(rewind_iteration=k; fully-connected copies train together as a population of
2), with the files and run_info single_run.train gives, so copies resume and
refuse changed settings like every run; a finished record with other settings is
refused too.
"""

import contextlib
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments import lockstep
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments import tickets
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.model_base import bias_key
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

RUN_NAME = "instability_k"  # {level}/instability_k{k}: the run id is k
RECORD = "instability.json"
COPIES = ("a", "b")
DEFAULT_POINTS = 30


def directory(trial_dir: str, level: int, k: int) -> str:
    """{trial_dir}/{level}/instability_k{k}.

    Args:
      trial_dir: the trial's directory.
      level: the pruning level analysed.
      k: the iteration the copies start from.
    """
    return paths.run(trial_dir, level, RUN_NAME, int(k))


def interpolate(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray],
                alpha: float) -> Network:
    """(1 - alpha) * first + alpha * second, for every array of `first`.

    Args:
      first: name -> array of one network.
      second: name -> array of the other, with the same names and shapes.
      alpha: the weight of `second`, in [0, 1].

    Raises:
      ValueError: the two networks hold different arrays or shapes.
    """
    if set(first) != set(second):
        raise ValueError(f"the two networks hold different arrays: "
                         f"{sorted(set(first) ^ set(second))}.")
    result = {}
    for name, value in first.items():
        value, other = np.asarray(value, np.float64), np.asarray(second[name], np.float64)
        if value.shape != other.shape:
            raise ValueError(f"{name}: shapes {value.shape} and {other.shape} differ.")
        result[name] = ((1.0 - alpha) * value + alpha * other).astype(np.float32)
    return result


def instability_of(errors: Sequence[float]) -> float:
    """Highest error on the path minus the mean of its two endpoints' errors.

    Args:
      errors: the errors at the points of the path, from one endpoint to the other.
    """
    errors = [float(error) for error in errors]
    return max(errors) - 0.5 * (errors[0] + errors[-1])


def evaluate_path(config: ExperimentConfig, first: Network, second: Network,
                  masks: Optional[Network] = None, points: int = DEFAULT_POINTS,
                  split: str = "test") -> List[Dict[str, float]]:
    """Loss, accuracy and error of the networks on the line from `first` to `second`.

    Args:
      config: the configuration (architecture and data).
      first: layer -> kernel and '{layer}.bias' -> bias values.
      second: layer -> kernel and '{layer}.bias' -> bias values.
      masks: layer -> 0/1 mask (None: dense); applied at every point.
      points: how many evenly spaced points, both endpoints included (>= 2).
      split: the split evaluated ('test', 'validate', 'train').

    Returns:
      One {'alpha', 'loss', 'accuracy', 'error'} per point, alpha 0 first.

    Raises:
      ValueError: fewer than 2 points, or networks that do not match.
    """
    if int(points) < 2:
        raise ValueError(f"interpolation_points is {points}; the path needs at least its "
                         "2 endpoints.")
    dataset = build.dataset(config, 0)  # the evaluated splits do not depend on the order
    model = build.model(config, presets=first, masks=masks, seed=0)
    model.build(dataset.example_shape)
    kernels, biases = model.kernel_variables, model.bias_variables
    path = []
    for alpha in np.linspace(0.0, 1.0, int(points)):
        weights = interpolate(first, second, float(alpha))
        for name, variable in kernels.items():
            variable.assign(weights[name])
        for name, variable in biases.items():
            variable.assign(weights[bias_key(name)])
        loss, accuracy = trainer.evaluate(model, dataset, split, xla=config["xla"])
        path.append({"alpha": float(alpha), "loss": float(loss), "accuracy": float(accuracy),
                     "error": 1.0 - float(accuracy)})
    return path


def _level0(trial_dir: str, lottery_name: str) -> str:
    level0 = paths.run(trial_dir, 0, lottery_name)
    if not runs.is_complete(level0):
        raise ValueError(f"{level0} is not a complete run: the instability analysis starts "
                         "from a trial's level 0. Run the lottery trial first "
                         f"(lottery_experiment --output_dir={trial_dir} --levels=L).")
    return level0


def start_weights(trial_dir: str, k: int, config: ExperimentConfig,
                  lottery_name: str = "lottery", progress: Progress = False) -> Network:
    """The dense network's kernels and biases at iteration k of the trial's level 0.

    k = 0: level 0's initial/; else its rewind{k}/ snapshot if it has one, else
    the final weights of a start run trained 0..k with level 0's seeds and
    batch order ({trial}/0/instability_k{k}/start, resumable).

    Args:
      trial_dir: the trial's directory.
      k: the iteration whose weights are wanted.
      config: the experiment's configuration (for a start run).
      lottery_name: the run name of the trial's runs.
      progress: as in trainer.train (for a start run).
    """
    level0 = _level0(trial_dir, lottery_name)
    if int(k) == 0:
        return save_restore.restore_network(paths.initial(level0))
    snapshot = paths.rewind(level0, int(k))
    if os.path.isdir(snapshot):
        return save_restore.restore_network(snapshot)
    recorded = runs.read_done(level0).get("run_info", {})
    seed = int(recorded.get("seed", 0))
    order_seed = int(recorded.get("train_order_seed", seed))
    start_config = config.replace(training_len=("iterations", int(k)), rewind_iteration=0)
    start_dir = os.path.join(directory(trial_dir, 0, k), "start")
    single_run.train(start_dir, start_config,
                     presets=save_restore.restore_network(paths.initial(level0)),
                     seed=seed, train_order_seed=order_seed,
                     run_info={"instability_start": int(k)}, progress=progress)
    return save_restore.restore_network(paths.final(start_dir))


def _settings(config: ExperimentConfig, level: int, k: int, points: int,
              seeds: Sequence[int], lottery_name: str) -> Dict[str, Any]:
    """What decides an analysis's numbers (compared when it is rerun)."""
    return {"config": {key: value for key, value in config.to_json().items()},
            "level": int(level), "k": int(k), "interpolation_points": int(points),
            "seeds": [int(seed) for seed in seeds], "lottery_name": lottery_name}


def _check_same(record: Mapping[str, Any], settings: Mapping[str, Any], where: str) -> None:
    ignore = set(ExperimentConfig.non_identity_fields())
    changed = []
    for key, value in settings.items():
        old = record.get("settings", {}).get(key)
        if key == "config":
            old_flat = {k: v for part in (old or {}).values() for k, v in part.items()}
            new_flat = {k: v for part in value.values() for k, v in part.items()}
            changed += [f"{name}: {old_flat.get(name)!r} -> {new_flat[name]!r}"
                        for name in new_flat if name not in ignore
                        and old_flat.get(name) != new_flat[name]]
        elif old != value:
            changed.append(f"{key}: {old!r} -> {value!r}")
    if changed:
        raise ValueError(f"{where} holds an instability analysis made with other settings "
                         f"({'; '.join(changed)}); finished analyses are never overwritten. "
                         "Rerun with its settings, or delete that directory to redo it.")


def train_copies(copy_dirs: Sequence[str], config: ExperimentConfig, masks: Network,
                 presets: Network, seeds: Sequence[int], extras: Sequence[Mapping[str, Any]],
                 progress: Progress = None) -> None:
    """Trains (or reads back) the copies of an instability analysis.

    Each copy trains as single_run.train would (seed = its batch order and dropout seed,
    run_info extended by its extra): together as a population of 2 for fully-connected
    networks (one compiled program, faster), one after the other otherwise. Either way each
    copy's files are those its single run would have, so a rerun reads them back.

    Args:
      copy_dirs: the copies' run directories.
      config: the experiment's configuration.
      masks: layer -> the mask every copy trains with.
      presets: name -> the weights every copy starts from (see start_weights).
      seeds: per copy, its batch order and dropout seed.
      extras: per copy, the facts added to its run_info.
      progress: as in trainer.train.
    """
    if config["model"] != "fc":
        for copy_dir, seed, extra in zip(copy_dirs, seeds, extras):
            single_run.train(copy_dir, config, masks=masks, presets=presets, seed=seed,
                             train_order_seed=seed, run_info=extra, progress=progress)
        return
    build.check(config)
    data = build.data_identity(config)
    infos = [single_run.make_run_info(config, seed, seed, masks, presets, data, extra)
             for seed, extra in zip(seeds, extras)]
    with contextlib.ExitStack() as locks:
        for copy_dir in copy_dirs:
            locks.enter_context(runs.lock(copy_dir))
        pending = [index for index, (copy_dir, info) in enumerate(zip(copy_dirs, infos))
                   if single_run.load_if_complete(copy_dir, info) is None]
        if not pending:
            return
        datasets = lockstep.datasets(config, [seeds[index] for index in pending])
        models = []
        for index, dataset in zip(pending, datasets):
            model = build.model(config, presets, masks, seed=seeds[index])
            build.check_fit(config, dataset, model, masks, presets)
            models.append(model)
        arguments = single_run.training_arguments(config, population=True)
        trainer.train_population(
            datasets, models, arguments.pop("optimizer_fn"), arguments.pop("training_len"),
            [copy_dirs[index] for index in pending],
            run_infos=[infos[index] for index in pending], progress=progress,
            progress_label="instability copies | ", **arguments)


def run_instability(trial_dir: str, level: int, k: int, *,
                    config: Optional[ExperimentConfig] = None,
                    interpolation_points: int = DEFAULT_POINTS,
                    seeds: Sequence[int] = (1, 2), lottery_name: str = "lottery",
                    data_location: Optional[str] = None,
                    progress: Progress = None) -> Dict[str, Any]:
    """The instability analysis of one level of a trial from iteration k.

    Args:
      trial_dir: a lottery trial ({trial}/{level}/{lottery_name} runs).
      level: 0 for the dense network, L > 0 for the ticket at level L (its masks).
      k: the iteration the copies start from (0 <= k < the training length).
      config: the configuration (default: the one level 0 recorded).
      interpolation_points: points on the path, endpoints included.
      seeds: the two copies' seeds (batch order and dropout); equal seeds
        train the same network twice (instability 0).
      lottery_name: the trial's run name.
      data_location: where the data is, if not where level 0 recorded it.
      progress: as in trainer.train (False: show nothing).

    Returns:
      The record written to {trial}/{level}/instability_k{k}/instability.json
      (or read back): 'instability', 'path' (one entry per point), 'k',
      'level', 'remaining' (fraction of kernel weights kept), 'copies' (their
      directories), 'endpoint_errors' and 'settings'.

    Raises:
      ValueError: a bad setting, a trial that lacks the level, or a finished
        analysis made with other settings.
    """
    level, k = int(level), int(k)
    seeds = [int(seed) for seed in seeds]
    if len(seeds) != 2:
        raise ValueError(f"seeds {seeds}: give the two copies' seeds, e.g. (1, 2).")
    if k < 0:
        raise ValueError(f"k is {k}; the copies start at an iteration >= 0.")
    level0 = _level0(trial_dir, lottery_name)
    if config is None:
        config = tickets.ticket_config(level0)
    if data_location:
        config = config.replace(data_location=data_location)
    copy_config = config.replace(rewind_iteration=k)  # refuses k >= training length
    ticket = paths.run(trial_dir, level, lottery_name)
    if not runs.is_complete(ticket):
        raise ValueError(f"{ticket} is not a complete run: level {level} of the trial must "
                         "be trained first (lottery_experiment --levels).")
    masks = save_restore.restore_network(paths.masks(ticket))
    settings = _settings(config, level, k, interpolation_points, seeds, lottery_name)
    where = directory(trial_dir, level, k)
    record_path = os.path.join(where, RECORD)
    with runs.lock(where, "instability analysis"):
        if os.path.isfile(record_path):
            record = save_restore.read_json(record_path)
            _check_same(record, settings, where)
            return record
        start = start_weights(trial_dir, k, config, lottery_name, progress=False)
        presets = {name: (value * masks[name] if name in masks else value)
                   for name, value in start.items()}
        copy_dirs = [os.path.join(where, name) for name in COPIES]
        extras = [{"instability": {"level": level, "k": k, "copy": name}} for name in COPIES]
        train_copies(copy_dirs, copy_config, masks, presets, seeds, extras, progress)
        finals = [save_restore.restore_network(paths.final(copy_dir))
                  for copy_dir in copy_dirs]
        path = evaluate_path(config, finals[0], finals[1], masks, interpolation_points)
        errors = [point["error"] for point in path]
        kept = sum(int(np.count_nonzero(mask)) for mask in masks.values())
        record = {"instability": instability_of(errors), "path": path, "k": k,
                  "level": level, "trial_dir": os.path.abspath(trial_dir),
                  "remaining": kept / sum(int(np.size(mask)) for mask in masks.values()),
                  "copies": copy_dirs, "endpoint_errors": [errors[0], errors[-1]],
                  "settings": settings}
        save_restore.write_json(record_path, record)
    return record


def parse_ints(text: Any, name: str) -> List[int]:
    """'0,100,500' (or a list) -> [0, 100, 500]; ValueError naming the flag otherwise.

    Args:
      text: '0,100,500' or a list of whole numbers.
      name: the flag's name (for the message).

    Raises:
      ValueError: not whole numbers >= 0 separated by commas, or none.
    """
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [item for item in str(text).replace(" ", "").split(",") if item]
    try:
        values = [int(item) for item in items]
    except (TypeError, ValueError):
        raise ValueError(f"--{name}={text!r}: give whole numbers separated by commas, "
                         "e.g. 0,100,500.") from None
    if not values or min(values) < 0:
        raise ValueError(f"--{name}={text!r}: give at least one whole number >= 0.")
    return values


def place(output_dir: str) -> Tuple[str, int, int]:
    """(trial directory, level, k) of an analysis directory {trial}/{level}/instability_k{k}.

    Args:
      output_dir: an analysis directory.

    Raises:
      ValueError: a path of another form.
    """
    where = os.path.abspath(output_dir).rstrip(os.sep)
    name, k = paths.split_run_name(os.path.basename(where))
    level = os.path.basename(os.path.dirname(where))
    if name != RUN_NAME or not k or not level.isdigit():
        raise ValueError(f"--output_dir={output_dir} is not an analysis directory: it must "
                         f"be {{trial}}/{{level}}/{RUN_NAME}{{k}} (e.g. results/lottery/"
                         f"trial1/0/{RUN_NAME}500), since the report reads the level and k "
                         "from its path.")
    return os.path.dirname(os.path.dirname(where)), int(level), int(k)


def command(family: Any) -> Any:
    """The `instability` runner of a family (cli.flags.Command).

    Args:
      family: the experiment family (experiments.family.Family): its runners package and
        flag aliases.
    """
    from lottery_ticket.cli import runners  # pylint: disable=import-outside-toplevel
    from lottery_ticket.cli.flags import Command, Flag  # pylint: disable=C0415

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        levels = parse_ints(values["levels"], "levels")
        ks = parse_ints(values["instability_iterations"], "instability_iterations")
        if values["output_dir"]:
            if given & {"trial_dir", "levels", "instability_iterations"}:
                raise ValueError("--output_dir names one analysis (its trial, level and "
                                 "k); drop --trial_dir, --levels and "
                                 "--instability_iterations, or drop --output_dir.")
            values["trial_dir"], level, k = place(values["output_dir"])
            levels, ks = [level], [k]
        elif not values["trial_dir"]:
            raise ValueError("pass --trial_dir=DIR (a lottery trial), or --output_dir="
                             "{trial}/{level}/instability_k{k} for one analysis.")
        seeds = parse_ints(values["seeds"], "seeds")
        runners.configure(values["threads"])
        for level in levels:
            for k in ks:
                record = run_instability(
                    values["trial_dir"], level, k,
                    interpolation_points=values["interpolation_points"], seeds=seeds,
                    lottery_name=values["lottery_name"],
                    data_location=values["data_location"] or None)
                print(f"level {level} ({100 * record['remaining']:.2f}% remain), k={k}: "
                      f"instability {100 * record['instability']:.2f}% "
                      f"(endpoint errors {100 * record['endpoint_errors'][0]:.2f}%, "
                      f"{100 * record['endpoint_errors'][1]:.2f}%)")

    location_aliases = tuple(alias for alias, field in family.flag_aliases.items()
                             if field == "data_location")
    own = [
        Flag("trial_dir", "", "A lottery trial whose levels are finished.", str),
        Flag("output_dir", "", "One analysis, {trial}/{level}/instability_k{k}, instead "
             "of --trial_dir, --levels and --instability_iterations (the form argfile "
             "batches need: one line per analysis).", str),
        Flag("levels", "0", "Levels analysed, comma-separated: 0 is the dense network, L "
             "the ticket at level L.", str),
        Flag("instability_iterations", "0", "The iterations k the two copies start from, "
             "comma-separated (e.g. 0,100,500,2000).", str),
        Flag("interpolation_points", DEFAULT_POINTS, "Points on the line between the "
             "copies' final weights, endpoints included.", int),
        Flag("seeds", "1,2", "The two copies' seeds (batch order and dropout).", str),
        Flag("lottery_name", "lottery", "Name of the trial's runs.", str),
        Flag("data_location", "", "Where the data is, if not where the trial recorded it.",
             str, aliases=location_aliases),
        Flag("threads", None, "TensorFlow threads (default: TensorFlow's).", Optional[int]),
    ]
    return Command(f"python -m {family.runners_package}.instability",
                   "Instability analysis (linear mode connectivity): from a trial level's "
                   "weights at iteration k, trains two copies with different batch orders "
                   "and records the test error along the line between their final weights "
                   "in {trial}/{level}/instability_k{k}/instability.json. Rerunning reads "
                   "finished analyses back.", own, run)
