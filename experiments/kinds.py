"""The experiment kinds, registered once: lottery, the controls, one-shot, single runs.

A kind says everything the rest of the library needs to know about it:

* its runner and argfile module names within a family's ``runners`` and
  ``argfiles`` packages, and the generic command and argfile builders behind
  them (``cli.runners``, ``cli.argfiles``);
* the names its run directories take in a trial ({trial}/{level}/{name}{id})
  and older names the reader takes for them (``same_init`` for ``lottery``);
* how the figures draw its runs: their order among the lines, label and style.

The runners (``cli.runners``), the argfiles (``cli.argfiles``), the argfile
runner's help, the reader (``analysis.reader``) and the figures
(``analysis.figures``) read this registry, so a new kind is one ``register``
call (and, for a family's ``python -m`` entry points, one line per module; see
``cli.runners.entry_point``)::

    kinds.register(kinds.Kind(
        name="grasp", runner="grasp", argfile="grasp_argfile", run_names=("grasp",),
        command=my_grasp_command, argfile_main=my_grasp_argfile_main, figure_order=5))
"""

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from lottery_ticket.foundations import controls
from lottery_ticket.foundations.registry import closest


@dataclasses.dataclass(frozen=True)
class Kind:
    """One experiment kind.

    Attributes:
      name: the kind, e.g. 'lottery', 'reinitialize'.
      runner: its runner module's name in a family's runners package.
      run_names: the names of its run directories in a trial, as the reader
        reports them in `experiment_name` (reinitialize: reinit, reuse,
        reuse_sign, its modes); () for runs named freely (single runs).
      argfile: its argfile module's name in a family's argfiles package, if any.
      command: command(family) -> cli.flags.Command, the runner's command line.
      argfile_main: argfile_main(family, argv) prints the argfile's lines.
      aliases: older directory names -> the run name the reader reports.
      control: its runs are controls of a ticket (control_runs.CONTROLS).
      ticket: its runs are tickets: the reader records the run name as their
        `control` when their run_info names none (lottery).
      figure_order: where its runs' lines go among a figure's lines (lower
        first); None: after the ordered ones, by name, as unregistered names.
      labels: run name -> legend label (default the run name).
      styles: run name -> matplotlib line style (marker, linestyle, color...)
        that replaces the one its place in the figure gives.
      own_layout: its directories in a level ({trial}/{level}/{name}{id}) are
        not runs but hold its own files (a record, runs of its own): the
        reader leaves them out of the runs; the kind's module reads them.
      argfile_takes_model: for a family whose models have their own defaults
        (Family.model_defaults), its argfile takes --model, uses that model's
        defaults and puts --model on every line (trials; controls read their
        ticket's settings instead).
    """
    name: str
    runner: str
    run_names: Tuple[str, ...] = ()
    argfile: Optional[str] = None
    command: Optional[Callable[[Any], Any]] = None
    argfile_main: Optional[Callable[[Any, Optional[Sequence[str]]], None]] = None
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    control: bool = False
    ticket: bool = False
    figure_order: Optional[float] = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    styles: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    argfile_takes_model: bool = False
    own_layout: bool = False


_KINDS: Dict[str, Kind] = {}


def register(kind: Kind, replace: bool = False) -> Kind:
    """Adds a kind; its name, runner, argfile and run names must be new.

    Args:
      kind: the kind.
      replace: replace a registered kind of the same name instead of raising.

    Returns:
      `kind`.

    Raises:
      ValueError: one of them is taken by another kind (pass replace=True to
        replace a kind of the same name).
    """
    others = [other for other in _KINDS.values() if other.name != kind.name]
    if kind.name in _KINDS and not replace:
        raise ValueError(f"an experiment kind named {kind.name!r} is already registered; "
                         "pass replace=True to replace it.")
    for other in others:
        taken = ({other.runner} & {kind.runner}) | (
            {other.argfile} & {kind.argfile} - {None}) | (
            set(other.run_names) & set(kind.run_names)) | (
            set(other.aliases) & set(kind.aliases))
        if taken:
            raise ValueError(f"kind {kind.name!r}: {', '.join(sorted(taken))} already "
                             f"belong(s) to kind {other.name!r}; choose other names.")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Removes a kind (a test's, say); no error if it is not registered.

    Args:
      name: the kind's name.
    """
    _KINDS.pop(name, None)


def get(name: str) -> Kind:
    """The kind named `name`; ValueError naming the registered ones otherwise.

    Args:
      name: the kind's name.

    Raises:
      ValueError: no kind of that name (naming the closest and the registered ones).
    """
    if name not in _KINDS:
        close = closest(name, _KINDS)
        hint = f" Did you mean {close!r}?" if close else ""
        raise ValueError(f"unknown experiment kind {name!r}.{hint} Registered: "
                         f"{', '.join(_KINDS)}.")
    return _KINDS[name]


def all_kinds() -> List[Kind]:
    """The registered kinds, in the order they were registered."""
    return list(_KINDS.values())


def by_runner(runner: str) -> Optional[Kind]:
    """The kind whose runner module is named `runner`, if any.

    Args:
      runner: a runner module's name (in lottery_ticket.cli.runners).
    """
    return next((kind for kind in _KINDS.values() if kind.runner == runner), None)


def by_argfile(argfile: str) -> Optional[Kind]:
    """The kind whose argfile module is named `argfile`, if any.

    Args:
      argfile: an argfile module's name (in lottery_ticket.cli.argfiles).
    """
    return next((kind for kind in _KINDS.values() if kind.argfile == argfile), None)


def runner_names() -> List[str]:
    """Every kind's runner module name, in registration order."""
    return [kind.runner for kind in _KINDS.values()]


def run_name(directory_name: str) -> str:
    """The run name the reader reports for a run directory's name.

    The directory's name is given without its run id; an alias gives its run name, any other
    name is itself.

    Args:
      directory_name: a run directory's name without its run id.
    """
    for kind in _KINDS.values():
        if directory_name in kind.aliases:
            return kind.aliases[directory_name]
    return directory_name


def of_run(run: str) -> Optional[Kind]:
    """The kind whose runs are named `run` (after aliases), if any.

    Args:
      run: a run name as the reader reports it.
    """
    return next((kind for kind in _KINDS.values() if run in kind.run_names), None)


def control_names() -> Tuple[str, ...]:
    """The run names of the controls, in registration order."""
    return tuple(name for kind in _KINDS.values() if kind.control for name in kind.run_names)


def line_order() -> Tuple[str, ...]:
    """The run names whose lines have a place in figures, in that order."""
    ordered = sorted((kind for kind in _KINDS.values() if kind.figure_order is not None),
                     key=lambda kind: kind.figure_order)
    return tuple(name for kind in ordered for name in kind.run_names)


def label(run: str) -> str:
    """The legend label of runs named `run`.

    Args:
      run: a run name as the reader reports it ('lottery', 'reinit', ...).
    """
    kind = of_run(run)
    return kind.labels.get(run, run) if kind else run


def style(run: str) -> Optional[Mapping[str, Any]]:
    """The line style registered for runs named `run`, or None.

    Args:
      run: a run name as the reader reports it.
    """
    kind = of_run(run)
    return kind.styles.get(run) if kind else None


def _runner(function: str, *arguments: Any) -> Callable[[Any], Any]:
    """command(family) calling cli.runners.<function>(family, *arguments), imported
    when called (the CLI is not needed to read experiments)."""
    def command(family: Any) -> Any:
        from lottery_ticket.cli import runners  # pylint: disable=import-outside-toplevel
        return getattr(runners, function)(family, *arguments)
    return command


def _argfile(function: str, *arguments: Any, **options: Any
             ) -> Callable[[Any, Optional[Sequence[str]]], None]:
    """argfile_main(family, argv) calling cli.argfiles.<function>."""
    def main(family: Any, argv: Optional[Sequence[str]] = None) -> None:
        from lottery_ticket.cli import argfiles  # pylint: disable=import-outside-toplevel
        getattr(argfiles, function)(family, *arguments, argv=argv, **options)
    return main


LOTTERY = register(Kind(
    name="lottery", runner="lottery_experiment", run_names=("lottery",),
    argfile="lottery_experiment_argfile", command=_runner("lottery"),
    argfile_main=_argfile("lottery_main"),
    # The original TensorFlow 1 codebase named its lottery runs `same_init`; such
    # trees are read as lottery runs, so they land in the same figures and tables.
    aliases={"same_init": "lottery"}, ticket=True, figure_order=0, argfile_takes_model=True))
TRAIN = register(Kind(name="train", runner="train", command=_runner("train")))
REINITIALIZE = register(Kind(
    name="reinitialize", runner="reinitialize", run_names=tuple(controls.REINITIALIZE_MODES),
    argfile="reinitialize_argfile", command=_runner("control", "reinitialize"),
    argfile_main=_argfile("control_main", None, "level",
                          modes=tuple(controls.REINITIALIZE_MODES)),
    control=True, figure_order=1))
REARRANGE = register(Kind(
    name="rearrange", runner="rearrange", run_names=("rearrange",),
    argfile="rearrange_argfile", command=_runner("control", "rearrange"),
    argfile_main=_argfile("control_main", "rearrange", "level"), control=True,
    figure_order=2))
RANDOM_PRUNE = register(Kind(
    name="random_prune", runner="random_prune", run_names=("random_prune",),
    argfile="random_prune_argfile", command=_runner("control", "random_prune"),
    argfile_main=_argfile("control_main", "random_prune", "level0"), control=True,
    figure_order=3))
# One-shot lines have no place of their own in figures: they sort by name, after
# the controls (as the report has always drawn them).
ONESHOT = register(Kind(
    name="oneshot", runner="oneshot", run_names=("oneshot",), argfile="oneshot_argfile",
    command=_runner("oneshot"), argfile_main=_argfile("oneshot_main"),
    argfile_takes_model=True))
# Pruning at initialization (experiments.prune_at_init): one run name per score and
# ablation, prune_at_init_{score}[_{ablation}]; lines after the controls, the
# ablations dashed. Runs of other scores are read all the same, as unregistered names.
PRUNE_AT_INIT_SCORES = ("snip", "grasp", "synflow", "magnitude_at_init", "magnitude", "random")
PRUNE_AT_INIT_ABLATIONS = {"shuffle": "shuffled", "reinit": "reinitialized",
                           "invert": "inverted"}
_ABLATION_MARKERS = {"shuffle": "x", "reinit": "+", "invert": "v"}
PRUNE_AT_INIT = register(Kind(
    name="prune_at_init", runner="prune_at_init", argfile="prune_at_init_argfile",
    run_names=tuple(f"prune_at_init_{score}{suffix}" for score in PRUNE_AT_INIT_SCORES
                    for suffix in ("",) + tuple(f"_{a}" for a in PRUNE_AT_INIT_ABLATIONS)),
    command=_runner("prune_at_init"), argfile_main=_argfile("prune_at_init_main"),
    figure_order=4,
    labels={f"prune_at_init_{score}{suffix}":
            f"{score if score.endswith('_at_init') else score + ' at init'}{text}"
            for score in PRUNE_AT_INIT_SCORES for suffix, text in
            [("", "")] + [(f"_{a}", f", {t}") for a, t in PRUNE_AT_INIT_ABLATIONS.items()]},
    styles={f"prune_at_init_{score}_{ablation}": {"linestyle": "--",
                                                  "marker": _ABLATION_MARKERS[ablation]}
            for score in PRUNE_AT_INIT_SCORES for ablation in PRUNE_AT_INIT_ABLATIONS},
    argfile_takes_model=True))


def _module_command(module: str) -> Callable[[Any], Any]:
    """command(family) calling lottery_ticket.experiments.<module>.command, imported
    when called."""
    def command(family: Any) -> Any:
        import importlib  # pylint: disable=import-outside-toplevel
        return importlib.import_module(f"lottery_ticket.experiments.{module}").command(family)
    return command


# Linear mode connectivity (experiments.instability): {level}/instability_k{k}/ holds two
# copies and instability.json.
INSTABILITY = register(Kind(name="instability", runner="instability",
                            run_names=("instability_k",), argfile="instability_argfile",
                            command=_module_command("instability"),
                            argfile_main=_argfile("instability_main"), own_layout=True))
# Supermasks (experiments.supermask): {trial}/supermask.json, no run directories.
SUPERMASK = register(Kind(name="supermask", runner="supermask",
                          argfile="supermask_argfile", command=_module_command("supermask"),
                          argfile_main=_argfile("supermask_main")))
