"""Figures and tables for an experiment tree, from the command line or a notebook::

    python -m lottery_ticket.analysis.report --experiment_root=EXP --output_dir=FIGS \\
        [--levels=0,3,7,12] [--format=svg] [--title="LeNet-300-100 on MNIST"]

writes into FIGS::

    early_stop_iteration.png   early-stopping iteration vs weights remaining
    early_stop_accuracy.png    test accuracy at early stopping vs weights remaining
    iterative_vs_oneshot.png   both early-stopping panels for lottery and oneshot runs
                               (when the tree has one-shot runs; the paper's Figure 4)
    rewinding.png              both panels for lottery runs rewound to different
                               iterations (when the tree has more than one)
    prune_at_init.png          final test accuracy vs weights remaining for lottery
                               tickets, each score at init, random pruning and the
                               ablations (when the tree has prune_at_init runs)
    accuracy_curves.png        test accuracy during training at the chosen levels
    weight_histograms.png      the tickets' initial weights per layer at those levels
    instability.png, .csv, .md instability vs k per level (when the tree has analyses)
    supermask.png, .csv        supermask accuracy vs weights remaining per mask
                               criterion (when its trials have supermask.json)
    summary.csv, summary.md    mean / min / max per experiment and level
    runs.csv                   one row per run with its metrics
    evaluations.csv            one row per run, split and evaluated iteration
    problems.txt               incomplete, diverged or malformed runs, by path (if any)

A run that is incomplete, diverged or damaged (done.json or metrics.json
malformed, a truncated .npy file, no finite loss ...) is listed in
problems.txt with its path and the reason, and left out of every table and
figure; the rest of the tree is analysed. summary.md names the diverged runs
and counts the others, so a reader of the table knows what is not in it.
Runs of one experiment name that differ in a setting that changes results
(rewind_iteration, pruning, model ...) are separate series, named by that
setting (metrics.label_series), never averaged together.
Nothing under the experiment root is ever written.
"""

import os
import sys
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from lottery_ticket.analysis import figures
from lottery_ticket.analysis import metrics
from lottery_ticket.analysis import reader
from lottery_ticket.analysis import science
from lottery_ticket.analysis import tables
from lottery_ticket.cli import flags
from lottery_ticket.foundations import registry
from lottery_ticket.foundations import save_restore


Levels = Union[None, int, str, Sequence[int]]


def _parse_levels(levels: Levels) -> Optional[List[int]]:
    if levels is None:
        return None
    if isinstance(levels, int):
        return [levels]
    if isinstance(levels, str):
        try:
            return [int(part) for part in levels.replace(" ", "").split(",") if part]
        except ValueError as error:
            raise ValueError(f"--levels={levels!r}: give level numbers, e.g. "
                             "--levels=0,3,7.") from error
    return [int(level) for level in levels]


def default_levels(available: Sequence[int], count: int = 5) -> List[int]:
    """Up to `count` levels spread from the first to the last available one.

    Args:
      available: the levels the runs have.
      count: the most levels returned.
    """
    available = sorted(set(available))
    if len(available) <= count:
        return available
    picks = {available[round(i * (len(available) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def _mixed_lengths(records: List[reader.Record]) -> List[reader.Problem]:
    """A note for each experiment and level whose runs trained for different lengths
    (the table averages them together, which is rarely what was meant)."""
    lengths: Dict[tuple, Dict[object, List[str]]] = {}
    for record in records:
        key = (record["experiment_name"], record["level"])
        lengths.setdefault(key, {}).setdefault(record.get("iterations"), []).append(
            record["path"])
    notes = []
    for (name, level), by_length in sorted(lengths.items(), key=lambda item: str(item[0])):
        if len(by_length) > 1:
            detail = "; ".join(f"{length} iterations: {', '.join(sorted(found))}"
                               for length, found in sorted(by_length.items(), key=str))
            notes.append(reader.Problem(
                f"{name} at level {level}", "runs trained for different lengths are "
                f"averaged together ({detail})", reader.NOTE))
    return notes


def report(experiment_root: str, output_dir: str, levels: Levels = None,
           experiment_name: str = "lottery", image_format: str = "png",
           title: Optional[str] = None) -> Dict[str, object]:
    """Reads an experiment and writes its figures and tables.

    Args:
      experiment_root: experiment root (trial{N}/ inside) or one trial.
      output_dir: where the files go (created if needed).
      levels: levels for the curves and histograms; default up to five
        spread over the levels that exist.
      experiment_name: the experiment whose curves and tickets are drawn.
      image_format: 'png' or 'svg'.
      title: names the experiment in every figure; default the folder name.

    Returns:
      A dict with 'written' (the paths), 'problems' (reader.Problem list),
      'diverged' (the diverged runs' Problems, also in problems) and 'summary'
      (the rows).

    Raises:
      ValueError: no complete run could be read (the problems say why), or
        none of the chosen levels has a run of `experiment_name`.
    """
    if image_format not in figures.FORMATS:
        raise ValueError(f"--format={image_format!r}: use one of {figures.FORMATS}.")
    root, out_dir = os.path.abspath(experiment_root), os.path.abspath(output_dir)
    inside = out_dir == root or out_dir.startswith(root + os.sep)
    # Beside the trials is fine; in the root of a single trial or in a trial, the
    # figures would land among the runs.
    into_runs = inside and (out_dir == root or reader.TRIAL_PATTERN.match(
        os.path.basename(root)) or reader.TRIAL_PATTERN.match(
        os.path.relpath(out_dir, root).split(os.sep)[0]))
    if into_runs:
        raise ValueError(f"--output_dir={output_dir} is inside the experiment it reports "
                         "on; write the report elsewhere (e.g. a figures/ folder beside it).")
    records, problems = reader.load_experiment(experiment_root)
    records = metrics.label_series(records)

    def nothing_to_analyse() -> ValueError:
        detail = "".join(f"\n  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        return ValueError(f"no complete run to analyse under {experiment_root}.{detail}{more}")

    if not records:
        raise nothing_to_analyse()
    title = title or os.path.basename(os.path.normpath(os.path.abspath(experiment_root)))
    names = sorted({r["base_name"] for r in records})
    if experiment_name not in names and experiment_name != "lottery":
        guess = registry.closest(experiment_name, names)
        hint = f" Did you mean {guess!r}?" if guess else ""
        raise ValueError(f"--experiment_name={experiment_name}: no complete runs of that name "
                         f"under {experiment_root}.{hint} Names: {', '.join(names)}.")
    series = sorted({r["experiment_name"] for r in records
                     if r["base_name"] == experiment_name})
    if experiment_name not in series and series:
        problems.append(reader.Problem(
            experiment_root, f"the {experiment_name!r} runs differ in their settings; the "
            f"curves and histograms show {series[0]!r} (--experiment_name picks another "
            f"of {series})", reader.NOTE))
        experiment_name = series[0]
    available = sorted({r["level"] for r in records
                        if r["experiment_name"] == experiment_name})
    chosen = _parse_levels(levels) or default_levels(available)
    if available and not set(chosen) & set(available):
        raise ValueError(f"--levels={','.join(map(str, chosen))}: no complete "
                         f"{experiment_name!r} run at those levels; levels with runs: "
                         f"{','.join(map(str, available))}.")
    missing = [level for level in chosen if level not in available]
    if missing:
        problems.append(reader.Problem(
            experiment_root, f"--levels asks for {','.join(map(str, missing))}, which "
            f"{'has' if len(missing) == 1 else 'have'} no complete {experiment_name!r} run "
            f"(levels with runs: {','.join(map(str, available))}); the curves and "
            f"histograms show {','.join(str(level) for level in chosen if level in available)}",
            reader.NOTE))
    # The tickets are read before any table is written: a run whose networks
    # turn out unreadable is a problem, and left out of the tables too.
    tickets, damaged = _read_tickets(records, experiment_name, chosen)
    if damaged:
        problems += damaged
        bad = {p.path for p in damaged}
        records = [r for r in records if r["path"] not in bad]
        if not records:
            raise nothing_to_analyse()
    rows = [metrics.run_metrics(r) for r in records]
    summary = metrics.summarize(rows)
    problems += _mixed_lengths(records)
    diverged = [p for p in problems if p.kind == reader.DIVERGED]
    left_out = sum(p.kind in (reader.INCOMPLETE, reader.MALFORMED) for p in problems)
    os.makedirs(output_dir, exist_ok=True)

    def out(name: str) -> str:
        return os.path.join(output_dir, name)

    written = []
    tables.write_csv(out("summary.csv"), summary)
    save_restore.write_bytes_atomically(
        out("summary.md"), tables.summary_markdown(
            summary, title, [p.path for p in diverged], left_out).encode("utf-8"))
    tables.write_csv(out("runs.csv"), rows)
    tables.write_csv(out("evaluations.csv"), reader.evaluations(records))
    written += [out(n) for n in ("summary.csv", "summary.md", "runs.csv", "evaluations.csv")]

    def draw(name: str, figure_title: str, make_figure, *arguments) -> None:
        path = out(f"{name}.{image_format}")
        make_figure(*arguments, path=path, title=figure_title)
        written.append(path)

    draw("early_stop_iteration", f"{title}: early-stopping iteration",
         figures.early_stopping_figure, summary, "early_stop_iteration")
    draw("early_stop_accuracy", f"{title}: test accuracy at early stopping",
         figures.early_stopping_figure, summary, "early_stop_test_accuracy")
    names = sorted({r["experiment_name"] for r in records})
    by_base = {base: [n for n in names if n == base or n.startswith(base + " (")]
               for base in ("lottery", "oneshot")}
    rewound = _rewinding_series(records)
    comparisons = {
        "iterative_vs_oneshot": (f"{title}: iterative vs one-shot pruning",
                                 by_base["lottery"] + by_base["oneshot"]
                                 if by_base["lottery"] and by_base["oneshot"] else None),
        "rewinding": (f"{title}: lottery runs rewound to different iterations",
                      rewound or None)}
    at_init = figures.prune_at_init_series(names)
    if at_init:
        draw("prune_at_init", f"{title}: pruning at initialization vs lottery tickets",
             figures.prune_at_init_figure, summary)
    elif os.path.exists(out(f"prune_at_init.{image_format}")):
        os.remove(out(f"prune_at_init.{image_format}"))  # An earlier report's would mislead.
    for name, (figure_title, chosen_series) in comparisons.items():
        if chosen_series:
            draw(name, figure_title, figures.comparison_figure, summary, chosen_series)
        elif os.path.exists(out(f"{name}.{image_format}")):
            os.remove(out(f"{name}.{image_format}"))  # An earlier report's would mislead.

    def left_out(figure: str, why: str) -> None:
        stale = out(f"{figure}.{image_format}")
        if os.path.exists(stale):
            os.remove(stale)  # An earlier report's figure would mislead.
        problems.append(reader.Problem(experiment_root, f"{why}: {figure} left out",
                                       reader.NOTE))

    at = f" at levels {','.join(map(str, chosen))}" if available else ""
    curves = metrics.curves(records)
    if any((experiment_name, level) in curves for level in chosen):
        draw("accuracy_curves", f"{title}: test accuracy during training ({experiment_name})",
             figures.accuracy_curves_figure, curves, experiment_name, chosen)
    else:
        left_out("accuracy_curves", f"no complete {experiment_name!r} runs with test "
                                    f"evaluations{at}")
    if tickets:
        draw("weight_histograms", f"{title}: initial weights of the {experiment_name} tickets",
             figures.weight_histograms_figure, tickets)
    else:
        left_out("weight_histograms", f"no complete {experiment_name!r} runs{at}")
    written += _science(experiment_root, out, image_format, title, problems)
    problems_path = out("problems.txt")
    if problems:
        save_restore.write_bytes_atomically(
            problems_path, ("\n".join(str(p) for p in problems) + "\n").encode("utf-8"))
        written.append(problems_path)
    elif os.path.exists(problems_path):
        os.remove(problems_path)  # A stale list from an earlier report would mislead.
    return {"written": written, "problems": problems, "diverged": diverged,
            "summary": summary}


def _science(root: str, out, image_format: str, title: str,
             problems: List[reader.Problem]) -> List[str]:
    """The instability and supermask figures and tables, when the tree has such
    records (analysis.science); an unreadable record is a problem, not a failure."""
    written: List[str] = []
    for name, read in (("instability", science.read_instability),
                       ("supermask", science.read_supermasks)):
        try:
            rows = read(root)
        except (ValueError, KeyError, TypeError, OSError) as error:
            problems.append(reader.Problem(root, f"{name} records unreadable ({error}); "
                                                 f"{name} figure left out", reader.NOTE))
            rows = []
        files = [f"{name}.{image_format}", f"{name}.csv"] + (
            ["instability.md"] if name == "instability" else [])
        if not rows:
            for stale in files:
                if os.path.exists(out(stale)):
                    os.remove(out(stale))  # An earlier report's would mislead.
            continue
        draw = figures.instability_figure if name == "instability" else \
            figures.supermask_figure
        draw(rows, path=out(files[0]), title=f"{title}: {name}")
        tables.write_csv(out(files[1]), rows)
        if name == "instability":
            save_restore.write_bytes_atomically(
                out(files[2]), science.instability_markdown(rows, title).encode("utf-8"))
        written += [out(f) for f in files]
    return written


def _rewinding_series(records: Sequence[reader.Record]) -> List[str]:
    """The lottery series that differ only in rewind_iteration (the largest such
    group, in runs), or [] when no group has two values of K."""
    groups: Dict[str, Dict[str, int]] = {}
    for record in records:
        if record["base_name"] != "lottery":
            continue
        others = {k: v for k, v in record["settings"].items() if k != "rewind_iteration"}
        group = groups.setdefault(repr(sorted(others.items())), {})
        group[record["experiment_name"]] = group.get(record["experiment_name"], 0) + 1
    candidates = [group for group in groups.values() if len(group) > 1]
    if not candidates:
        return []
    return sorted(max(candidates, key=lambda group: sum(group.values())))


def _read_tickets(records: Sequence[reader.Record], experiment_name: str,
                  levels: Sequence[int]) -> Tuple[Dict[int, list], List[reader.Problem]]:
    """level -> [{'initial', 'masks'}] of the chosen runs, and a Problem for
    each run whose networks cannot be read."""
    tickets: Dict[int, list] = {}
    damaged = []
    for record in records:
        if record["experiment_name"] == experiment_name and record["level"] in levels:
            try:
                ticket = reader.load_ticket(record["path"])
            except reader.MalformedRun as error:
                damaged.append(reader.Problem(record["path"], str(error), error.kind))
                continue
            tickets.setdefault(record["level"], []).append(ticket)
    return tickets, damaged


def _run(values: Dict[str, object], given: Set[str]) -> None:
    result = report(values["experiment_root"], values["output_dir"], values["levels"],
                    values["experiment_name"], values["format"], values["title"])
    for path in result["written"]:
        print(path)
    for problem in result["problems"]:
        print(f"problem: {problem}", file=sys.stderr)
    if result["diverged"]:
        print(f"{tables.plural(len(result['diverged']), 'diverged run')} excluded from every "
              "table and figure: " + ", ".join(p.path for p in result["diverged"]),
              file=sys.stderr)
    complete = sum(row["runs"] for row in result["summary"])
    print(f"{tables.plural(complete, 'complete run')} analysed; "
          f"{len(result['problems'])} problem(s).")


COMMAND = flags.Command(
    "python -m lottery_ticket.analysis.report",
    "Reads every run under an experiment root (or one trial) and writes figures, tables "
    "and problems.txt into --output_dir.",
    [flags.Flag("experiment_root", flags.REQUIRED, "Experiment root holding trial{N}/ "
                "directories, or one trial.", str, aliases=("experiment_path",)),
     flags.Flag("output_dir", flags.REQUIRED, "Where the figures and tables go.", str),
     flags.Flag("levels", None, "Levels for the curves and histograms, e.g. 0,3,7 "
                "(default: up to five spread over those that exist)."),
     flags.Flag("experiment_name", "lottery", "The experiment whose curves and tickets "
                "are drawn.", str),
     flags.Flag("format", "png", "png or svg.", str),
     flags.Flag("title", None, "Names the experiment in every figure (default: the "
                "folder's name).", Optional[str])],
    _run)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: writes the report and lists the files and any problems.

    Args:
      argv: the command-line arguments (None: sys.argv[1:]).
    """
    COMMAND.run(argv)


if __name__ == "__main__":
    main()
