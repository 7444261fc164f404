"""Argfiles: scripts that print one runner flag line per run, for batches.

A family's argfile module is a few lines around ``lottery_main`` or
``control_main``. Flags are defined when its ``main()`` runs, on a flag set of
its own, so any number of argfile modules can be imported in one process, and
``main`` can be called more than once (from a test or a notebook). A bad flag
is one ``error:`` line naming it, with exit status 2.

Lines name their flags as the family's runners take them: ``--levels`` for
the pruning levels and the family's name for the data location (``mnist_fc``
keeps ``--mnist_location``).
"""

import contextvars
import os
import shlex
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from absl import flags

from lottery_ticket.experiments import kinds
from lottery_ticket.experiments.config import parse_level_list, parse_training_len
from lottery_ticket.experiments.family import Family
from lottery_ticket.foundations import paths


# The run names of the trials' runs and of the one-shot runs (experiments.kinds).
_LOTTERY = kinds.LOTTERY.run_names[0]
_ONESHOT = kinds.ONESHOT.run_names[0]


def _training_len_text(family: Family) -> str:
    unit, amount = family.defaults["training_len"]
    return f"{unit}:{amount}"


def define_trial_flags(family: Family, values: flags.FlagValues) -> None:
    """Flags of every argfile: which trials, where, on what data, how long."""
    flags.DEFINE_integer("trials", 5, "Number of trials (the paper averages five).",
                         flag_values=values)
    flags.DEFINE_integer("first_trial", 1, "Number of the first trial.", flag_values=values)
    flags.DEFINE_string("experiment_root", family.experiment_root,
                        "Directory holding the trial{N} directories.", flag_values=values)
    flags.DEFINE_string(family.location_flag, family.defaults["data_location"],
                        "Directory of the data set's files.", flag_values=values)
    flags.DEFINE_string("training_len", _training_len_text(family),
                        "Training length: iterations:N or epochs:N. Control lines carry "
                        "it only when given (controls train like their ticket).",
                        flag_values=values)
    flags.DEFINE_multi_string("extra", [], "A flag added to every line, e.g. "
                              "--extra=--learning_rate=0.05 (repeatable).",
                              flag_values=values)
    flags.DEFINE_integer("rewind_iteration", 0, "Late resetting: the trials' "
                         "--rewind_iteration (lottery and one-shot lines carry it; "
                         "controls that start from level 0 take its rewind{K}/ "
                         "snapshot as presets). 0: none.", lower_bound=0,
                         flag_values=values)


def define_control_flags(family: Family, values: flags.FlagValues) -> None:
    """The flags every control argfile takes."""
    define_trial_flags(family, values)
    levels = family.defaults["levels"]
    flags.DEFINE_integer("first_level", 1, "First pruning level to run controls at.",
                         flag_values=values)
    flags.DEFINE_integer("last_level", levels, "Last pruning level.", flag_values=values)
    flags.DEFINE_integer("runs_per_level", 3, "Control runs per trial and level "
                         "(the paper trains three per ticket).", flag_values=values)
    flags.DEFINE_integer("runs_per_process", 1, "Control runs of one trial and level "
                         "each line trains together as a population (--population=K): "
                         "e.g. --runs_per_process=3 with three runs per level gives one "
                         "line per trial and level.", flag_values=values)
    flags.DEFINE_string("lottery_name", _LOTTERY,
                        "experiment_name of the lottery runs the controls read.",
                        flag_values=values)


def lottery_lines(trials: int, first_trial: int, levels: int, experiment_root: str,
                  data_location: str, training_len: str, extra: Sequence[str] = (),
                  location_flag: str = "data_location", rewind_iteration: int = 0,
                  trials_per_process: int = 1) -> List[str]:
    """The lottery flag lines, quoted for a shell: one per trial (trial N: seed N), or
    one per `trials_per_process` consecutive trials, trained together as a population
    (--population=K, --output_dir={root}/trial{seed})."""
    if trials_per_process < 1:
        raise ValueError(f"--trials_per_process={trials_per_process}: give the number of "
                         "trials each line trains together (1: one trial a line).")
    lines = []
    last = first_trial + trials
    for trial in range(first_trial, last, trials_per_process):
        population = min(trials_per_process, last - trial)
        directory = paths.trial(experiment_root, trial if population == 1 else "{seed}")
        args = [f"--output_dir={directory}", f"--seed={trial}", f"--levels={levels}",
                f"--{location_flag}={data_location}", f"--training_len={training_len}"]
        if population > 1:
            args.append(f"--population={population}")
        lines.append(shlex.join(args + _rewind_args(rewind_iteration) + list(extra)))
    return lines


def _rewind_args(rewind_iteration: int) -> List[str]:
    return [f"--rewind_iteration={rewind_iteration}"] if rewind_iteration else []


def oneshot_lines(trials: int, first_trial: int, levels: Sequence[int], experiment_root: str,
                  data_location: str, training_len: str, extra: Sequence[str] = (),
                  location_flag: str = "data_location", rewind_iteration: int = 0,
                  lottery_name: str = _LOTTERY, experiment_name: str = _ONESHOT
                  ) -> List[str]:
    """One one-shot flag line per trial and level: {root}/trial{T}/{k}/oneshot, seed T
    (the trial's), pruned from the trial's level 0 ({root}/trial{T}/0/{lottery_name})."""
    lines = []
    for trial in range(first_trial, first_trial + trials):
        trial_dir = paths.trial(experiment_root, trial)
        for level in levels:
            args = [f"--output_dir={paths.run(trial_dir, level, experiment_name)}",
                    f"--seed={trial}", f"--{location_flag}={data_location}",
                    f"--training_len={training_len}"]
            if lottery_name != _LOTTERY:
                args.append(f"--lottery_name={lottery_name}")
            if experiment_name != _ONESHOT:
                args.append(f"--experiment_name={experiment_name}")
            lines.append(shlex.join(args + _rewind_args(rewind_iteration) + list(extra)))
    return lines


def control_lines(experiment_name: str, trials: int, first_trial: int, first_level: int,
                  last_level: int, runs_per_level: int, experiment_root: str,
                  lottery_name: str, data_location: str, training_len: Optional[str],
                  presets_from: Optional[str], extra: Sequence[str] = (),
                  fixed: Sequence[str] = (), location_flag: str = "data_location",
                  rewind_iteration: int = 0, runs_per_process: int = 1) -> List[str]:
    """One shell-quoted flag line per control run, or per `runs_per_process` runs.

    Run R of trial T at level L writes {root}/trial{T}/{L}/{experiment_name}{R},
    reads the lottery run's masks at level L and, per `presets_from`, its
    initial weights at level L ('level'), at level 0 ('level0'; with
    `rewind_iteration` K, level 0's rewind{K}/ snapshot) or none (None).
    Its seed is 1000 * T + R, so every control run draws differently, and its
    batch order is the trial's (seed T), as in the lottery runs. The training
    settings come from the ticket; `training_len` is written only if given.

    With `runs_per_process` K > 1, each line trains K consecutive runs of one
    trial and level together (the last group of a level may be smaller): its
    --output_dir is the first run's, {experiment_name}{R}, its --seed that
    run's, and --population=K makes the runner train runs R..R+K-1 with seeds
    --seed..--seed+K-1, the same runs and seeds as the K lines it replaces.
    """
    if first_level > last_level:
        raise ValueError(f"first_level {first_level} is after last_level {last_level}.")
    if runs_per_process < 1:
        raise ValueError(f"--runs_per_process={runs_per_process}: give the number of "
                         "control runs each line trains together (1: one run a line).")
    lines = []
    for trial in range(first_trial, first_trial + trials):
        trial_dir = paths.trial(experiment_root, trial)
        for level in range(first_level, last_level + 1):
            ticket = paths.run(trial_dir, level, lottery_name)
            for run_id in range(1, runs_per_level + 1, runs_per_process):
                population = min(runs_per_process, runs_per_level + 1 - run_id)
                args = [f"--output_dir={paths.run(trial_dir, level, experiment_name, run_id)}",
                        f"--masks={paths.masks(ticket)}"]
                if presets_from == "level":
                    args.append(f"--presets={paths.initial(ticket)}")
                elif presets_from == "level0":
                    level0 = paths.run(trial_dir, 0, lottery_name)
                    args.append(f"--presets={paths.rewind(level0, rewind_iteration)}"
                                if rewind_iteration else f"--presets={paths.initial(level0)}")
                args += [f"--seed={1000 * trial + run_id}", f"--train_order_seed={trial}",
                         f"--{location_flag}={data_location}"]
                if training_len:
                    args.append(f"--training_len={training_len}")
                if population > 1:
                    args.append(f"--population={population}")
                lines.append(shlex.join(args + list(fixed) + list(extra)))
    return lines


class _Defined(Exception):
    """Carries an argfile's flags, defined and not parsed, out of _parse (defined_flags)."""

    def __init__(self, values: flags.FlagValues):
        super().__init__("flags defined")
        self.values = values


# Set by defined_flags: _parse stops after defining the flags.
_DEFINE_ONLY = contextvars.ContextVar("argfiles_define_only", default=False)


def _parse(define: Callable[[flags.FlagValues], None], argv: Optional[Sequence[str]],
           program: str) -> flags.FlagValues:
    values = flags.FlagValues()
    define(values)
    flags.DEFINE_boolean("help", False, "Show this help and exit.", flag_values=values,
                         short_name="h")
    if _DEFINE_ONLY.get():
        raise _Defined(values)
    # argv holds the flags only, as the runners' main(argv) does.
    argv = [program] + list(sys.argv[1:] if argv is None else argv)
    try:
        rest = values(argv)
    except flags.Error as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if values.help:
        print(f"usage: python -m {program} [--flag=VALUE ...]\n")
        print(values.module_help(values.find_module_defining_flag("trials") or "")
              or values.main_module_help())
        sys.exit(0)
    if len(rest) > 1:
        print(f"error: unexpected argument {rest[1]!r}: every setting is a --flag=value.",
              file=sys.stderr)
        sys.exit(2)
    return values


def _emit(make_lines: Callable[[], List[str]], values: flags.FlagValues,
          family: Family) -> None:
    try:
        parse_training_len(values.training_len)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if not values[family.location_flag].value:
        print(f"error: no data location: pass --{family.location_flag}=DIR (the family "
              "has no default), so that every line can find the data.", file=sys.stderr)
        sys.exit(2)
    _emit_analysis(make_lines, values)


def lottery_main(family: Family, argv: Optional[Sequence[str]] = None) -> None:
    """Prints one lottery flag line per trial for the parsed flags.

    Args:
      family: the family.
      argv: the flags (default sys.argv[1:]), without the program's name.
    """

    def define(values: flags.FlagValues) -> None:
        define_trial_flags(family, values)
        flags.DEFINE_integer("levels", family.defaults["levels"],
                             "Pruning levels after level 0.", flag_values=values)
        flags.DEFINE_integer("trials_per_process", 1, "Trials each line trains together "
                             "as a population (--population=K): fewer, faster lines.",
                             flag_values=values)

    f = _parse(define, argv, f"{family.argfiles_package}.{kinds.LOTTERY.argfile}")
    _emit(lambda: lottery_lines(f.trials, f.first_trial, f.levels, f.experiment_root,
                                f[family.location_flag].value, f.training_len, f.extra,
                                family.location_flag, f.rewind_iteration,
                                f.trials_per_process), f, family)


def oneshot_main(family: Family, argv: Optional[Sequence[str]] = None) -> None:
    """Prints one one-shot flag line per trial and level for the parsed flags.

    Args:
      family: the family.
      argv: the flags (default sys.argv[1:]), without the program's name.
    """

    def define(values: flags.FlagValues) -> None:
        define_trial_flags(family, values)
        flags.DEFINE_string("oneshot_levels", None, "Comma-separated levels to reach in one "
                            "shot, e.g. 3,7,12 (default: every level 1..--last_level).",
                            flag_values=values)
        flags.DEFINE_integer("last_level", family.defaults["levels"],
                             "Last level when --oneshot_levels is not given.",
                             flag_values=values)
        flags.DEFINE_string("lottery_name", _LOTTERY, "experiment_name of the trials' "
                            "runs, whose level 0 the one-shot runs prune.", flag_values=values)

    f = _parse(define, argv, f"{family.argfiles_package}.{kinds.ONESHOT.argfile}")

    def lines() -> List[str]:
        levels = parse_level_list(f.oneshot_levels if f.oneshot_levels is not None
                              else range(1, f.last_level + 1))
        return oneshot_lines(f.trials, f.first_trial, levels, f.experiment_root,
                             f[family.location_flag].value, f.training_len, f.extra,
                             family.location_flag, f.rewind_iteration, f.lottery_name)

    _emit(lines, f, family)


def prune_at_init_lines(trials: int, first_trial: int, levels: Sequence[int],
                        experiment_root: str, data_location: str, training_len: str,
                        scores: Sequence[str], ablations: Sequence[str] = ("none",),
                        extra: Sequence[str] = (), location_flag: str = "data_location"
                        ) -> List[str]:
    """One prune-at-init line per trial, level, score and ablation:
    {root}/trial{T}/{k}/prune_at_init_{score}[_{ablation}], seed T (the trial's)."""
    from lottery_ticket.experiments import prune_at_init as pai  # pylint: disable=C0415
    lines = []
    for trial in range(first_trial, first_trial + trials):
        trial_dir = paths.trial(experiment_root, trial)
        for level in levels:
            for score in scores:
                for ablation in ablations:
                    name = pai.run_name(score, ablation)
                    args = [f"--output_dir={paths.run(trial_dir, level, name)}",
                            f"--seed={trial}", f"--prune_scores={score}",
                            f"--{location_flag}={data_location}",
                            f"--training_len={training_len}"]
                    if pai.check_ablation(ablation):
                        args.append(f"--ablation={ablation}")
                    lines.append(shlex.join(args + list(extra)))
    return lines


def prune_at_init_main(family: Family, argv: Optional[Sequence[str]] = None) -> None:
    """Prints one prune-at-init flag line per trial, level, score and ablation.

    Args:
      family: the family.
      argv: the flags (default sys.argv[1:]), without the program's name.
    """

    def define(values: flags.FlagValues) -> None:
        define_trial_flags(family, values)
        flags.DEFINE_string("levels_at", None, "Comma-separated lottery levels whose "
                            "densities to prune to, e.g. 3,7,12 (default 1..--last_level).",
                            flag_values=values)
        flags.DEFINE_integer("last_level", family.defaults["levels"],
                             "Last level when --levels_at is not given.", flag_values=values)
        flags.DEFINE_list("scores", ["snip", "synflow", "random"], "Scores at init, "
                          "e.g. snip,grasp,synflow,magnitude_at_init,random.",
                          flag_values=values)
        flags.DEFINE_list("ablations", ["none"], "none and/or shuffle, reinit, invert.",
                          flag_values=values)

    kind = kinds.by_runner("prune_at_init")
    f = _parse(define, argv, f"{family.argfiles_package}.{kind.argfile}")

    def lines() -> List[str]:
        levels = parse_level_list(f.levels_at if f.levels_at is not None
                                  else range(1, f.last_level + 1))
        if f.rewind_iteration:
            raise ValueError("pruning at initialization trains from iteration 0: drop "
                             "--rewind_iteration.")
        return prune_at_init_lines(f.trials, f.first_trial, levels, f.experiment_root,
                                   f[family.location_flag].value, f.training_len, f.scores,
                                   f.ablations, f.extra, family.location_flag)

    _emit(lines, f, family)


def instability_lines(trials: int, first_trial: int, levels: Sequence[int],
                      ks: Sequence[int], experiment_root: str, data_location: str = "",
                      extra: Sequence[str] = (), location_flag: str = "data_location"
                      ) -> List[str]:
    """One instability line per trial, level and k: --output_dir={root}/trial{T}/{L}/
    instability_k{k} (one analysis; experiments.instability.place reads it back), and
    the data location only when given (the runner reads the trial's own).

    Args:
      trials, first_trial: the trials, first_trial .. first_trial + trials - 1.
      levels: the levels analysed (0: the dense network).
      ks: the iterations the copies start from.
      experiment_root: the directory holding the trial{N} directories.
      data_location: where the data is; '' for where each trial recorded it.
      extra: flags added to every line.
      location_flag: the family's flag name for the data location.

    Returns:
      The lines, quoted for a shell, trial by trial, level by level, k by k.
    """
    from lottery_ticket.experiments import instability  # pylint: disable=C0415
    lines = []
    for trial in range(first_trial, first_trial + trials):
        trial_dir = paths.trial(experiment_root, trial)
        for level in levels:
            for k in ks:
                args = [f"--output_dir={instability.directory(trial_dir, level, k)}"]
                if data_location:
                    args.append(f"--{location_flag}={data_location}")
                lines.append(shlex.join(args + list(extra)))
    return lines


def supermask_lines(trials: int, first_trial: int, experiment_root: str,
                    data_location: str = "", extra: Sequence[str] = (),
                    location_flag: str = "data_location") -> List[str]:
    """One supermask line per trial: --output_dir={root}/trial{T}/supermask (the
    runner evaluates every finished level of the trial), the data location only when
    given.

    Args:
      trials, first_trial: the trials, first_trial .. first_trial + trials - 1.
      experiment_root: the directory holding the trial{N} directories.
      data_location: where the data is; '' for where each trial recorded it.
      extra: flags added to every line.
      location_flag: the family's flag name for the data location.

    Returns:
      The lines, quoted for a shell, one per trial.
    """
    lines = []
    for trial in range(first_trial, first_trial + trials):
        trial_dir = paths.trial(experiment_root, trial)
        args = [f"--output_dir={os.path.join(trial_dir, 'supermask')}"]
        if data_location:
            args.append(f"--{location_flag}={data_location}")
        lines.append(shlex.join(args + list(extra)))
    return lines


def _define_analysis_flags(family: Family, values: flags.FlagValues) -> None:
    """The flags of the argfiles of analyses of finished trials (instability, supermask)."""
    flags.DEFINE_integer("trials", 5, "Number of trials.", flag_values=values)
    flags.DEFINE_integer("first_trial", 1, "Number of the first trial.", flag_values=values)
    flags.DEFINE_string("experiment_root", family.experiment_root,
                        "Directory holding the trial{N} directories.", flag_values=values)
    flags.DEFINE_string(family.location_flag, "", "Directory of the data set's files, "
                        "if not where the trials recorded it (lines carry it only when "
                        "given).", flag_values=values)
    flags.DEFINE_multi_string("extra", [], "A flag added to every line, e.g. "
                              "--extra=--threads=1 (repeatable).", flag_values=values)


def _emit_analysis(make_lines: Callable[[], List[str]], values: flags.FlagValues) -> None:
    """Prints the lines, or one error line and exit status 2 (also _emit's last step)."""
    if values.trials < 1:
        print(f"error: --trials={values.trials}: give at least one trial.", file=sys.stderr)
        sys.exit(2)
    try:
        print("\n".join(make_lines()))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def instability_main(family: Family, argv: Optional[Sequence[str]] = None) -> None:
    """Prints one instability flag line per trial, level and k for the parsed flags.

    Args:
      family: the family.
      argv: the flags (default sys.argv[1:]), without the program's name.
    """

    def define(values: flags.FlagValues) -> None:
        _define_analysis_flags(family, values)
        flags.DEFINE_string("levels", "0", "Comma-separated levels analysed: 0 is the dense "
                            "network, L the ticket at level L.", flag_values=values)
        flags.DEFINE_string("instability_iterations", "0", "Comma-separated iterations k "
                            "the copies start from, e.g. 0,100,500,2000.",
                            flag_values=values)
        flags.DEFINE_integer("interpolation_points", None, "Points on the path (lines "
                             "carry it only when given; the runner's default otherwise).",
                             flag_values=values)

    from lottery_ticket.experiments import instability  # pylint: disable=C0415
    kind = kinds.by_runner("instability")
    f = _parse(define, argv, f"{family.argfiles_package}.{kind.argfile}")

    def lines() -> List[str]:
        levels = instability.parse_ints(f.levels, "levels")
        ks = instability.parse_ints(f.instability_iterations, "instability_iterations")
        extra = list(f.extra)
        if f.interpolation_points is not None:
            extra.insert(0, f"--interpolation_points={f.interpolation_points}")
        return instability_lines(f.trials, f.first_trial, levels, ks, f.experiment_root,
                                 f[family.location_flag].value, extra, family.location_flag)

    _emit_analysis(lines, f)


def supermask_main(family: Family, argv: Optional[Sequence[str]] = None) -> None:
    """Prints one supermask flag line per trial for the parsed flags.

    Args:
      family: the family.
      argv: the flags (default sys.argv[1:]), without the program's name.
    """
    kind = kinds.by_runner("supermask")
    f = _parse(lambda values: _define_analysis_flags(family, values), argv,
               f"{family.argfiles_package}.{kind.argfile}")
    _emit_analysis(lambda: supermask_lines(f.trials, f.first_trial, f.experiment_root,
                                           f[family.location_flag].value, f.extra,
                                           family.location_flag), f)


def control_main(family: Family, experiment_name: Optional[str],
                 presets_from: Optional[str], argv: Optional[Sequence[str]] = None,
                 modes: Sequence[str] = ()) -> None:
    """Prints one control flag line per trial, level and run (or group of
    --runs_per_process runs) for the parsed flags.

    Args:
      family: the family.
      experiment_name: the runs' name; None for reinitialize, whose name is --mode.
      presets_from: 'level', 'level0' or None (see control_lines); for
        reinitialize, 'level' except in mode reinit.
      argv: the flags (default sys.argv[1:]), without the program's name.
      modes: the --mode choices, for reinitialize.
    """

    def define(values: flags.FlagValues) -> None:
        define_control_flags(family, values)
        if modes:
            flags.DEFINE_enum("mode", modes[0], list(modes),
                              "reinit: fresh draw; reuse: sample the ticket's initial "
                              "values; reuse_sign: reuse keeping each weight's sign.",
                              flag_values=values)

    kind = kinds.REINITIALIZE if experiment_name is None else kinds.of_run(experiment_name)
    argfile = kind.argfile if kind is not None and kind.argfile else f"{experiment_name}_argfile"
    f = _parse(define, argv, f"{family.argfiles_package}.{argfile}")
    name, fixed, source = experiment_name, [], presets_from
    if modes:
        name, fixed = f.mode, [f"--mode={f.mode}"]
        source = None if f.mode == "reinit" else "level"
    training_len = f.training_len if f["training_len"].present else None
    _emit(lambda: control_lines(name, f.trials, f.first_trial, f.first_level, f.last_level,
                                f.runs_per_level, f.experiment_root, f.lottery_name,
                                f[family.location_flag].value, training_len, source,
                                f.extra, fixed, family.location_flag, f.rewind_iteration,
                                f.runs_per_process),
          f, family)


def entry_point(family: Family, argfile: str
                ) -> Callable[[Optional[Sequence[str]]], None]:
    """main(argv=None) of a family's argfile module, by the module's name.

    The argfile is an experiment kind's (experiments.kinds), so a family's
    argfile module is one line::

        main = argfiles.entry_point(constants.FAMILY, "oneshot_argfile")

    Raises:
      ValueError: no kind has an argfile of that name, or the family does not
        offer that kind (Family.kinds).
    """
    kind = kinds.by_argfile(argfile)
    if kind is None or kind.argfile_main is None:
        known = [k.argfile for k in kinds.all_kinds() if k.argfile]
        raise ValueError(f"no experiment kind has an argfile named {argfile!r}; argfiles: "
                         f"{', '.join(known)}.")
    family.check_offers(kind.name)
    make_lines = kind.argfile_main

    def main(argv: Optional[Sequence[str]] = None) -> None:
        """Defines the flags, parses argv (default sys.argv) and prints the lines."""
        if kind.argfile_takes_model and family.model_defaults:
            model, rest = split_model(family, sys.argv[1:] if argv is None else argv)
            make_lines(family.for_model(model), rest + [f"--extra=--model={model}"])
        else:
            make_lines(family, argv)

    return main


def split_model(family: Family, argv: Sequence[str]) -> Tuple[str, List[str]]:
    """(the --model named in argv or the family's default, the other arguments),
    for the argfiles of a family whose models have their own defaults.

    Exits with status 2 and one error line for a model the family has no defaults for.
    """
    model, rest, index = family.defaults["model"], [], 0
    argv = list(argv)
    while index < len(argv):
        argument = argv[index]
        if argument == "--model" and index + 1 < len(argv):
            model, index = argv[index + 1], index + 2
            continue
        if argument.startswith("--model="):
            model = argument.partition("=")[2]
        else:
            rest.append(argument)
        index += 1
    if model not in family.model_defaults:
        print(f"error: --model={model} is not one of this family's models "
              f"({', '.join(family.model_defaults)}).", file=sys.stderr)
        sys.exit(2)
    return model, rest


def defined_flags(family: Family, argfile: str) -> flags.FlagValues:
    """The flags of a family's argfile module, defined and not parsed: what its
    --help lists, as objects (name, default, help), for generated documentation.

    The --model of a family whose models have their own defaults is read before
    these flags (split_model) and is not among them; the defaults are those of
    the family's default model.

    Args:
      family: the family.
      argfile: the argfile module's name, e.g. 'oneshot_argfile'.

    Returns:
      The flags, in absl's FlagValues (--help included).

    Raises:
      ValueError: as entry_point: no kind has that argfile, or the family does
        not offer it.
    """
    main = entry_point(family, argfile)
    token = _DEFINE_ONLY.set(True)
    try:
        main([])
    except _Defined as defined:
        return defined.values
    finally:
        _DEFINE_ONLY.reset(token)
    raise RuntimeError(f"the argfile {argfile} printed its lines without defining flags.")
