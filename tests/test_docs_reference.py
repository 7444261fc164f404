"""The reference pages agree with the code: a page that drifts fails here.

* docs/reference/layout.md: a real trial with every kind of run (controls, a
  population, one-shot, pruning at initialization, a diverged run, an
  instability analysis, a supermask evaluation) writes exactly the files and
  folders its tables list, and every row is written.
* docs/reference/done-json.md: the keys of those runs' done.json, recursively,
  are exactly the documented ones, and run_info.config holds every field of
  the configuration by concern.
* docs/reference/exit-statuses.md: each status is the one the code exits with.
* docs/_ext/flag_reference.py: its pages list every runner and every flag of
  the commands, and cli.argfiles.defined_flags leaves the argfiles working.
"""

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import re

import pytest

from conftest import register_synthetic_dataset
from lottery_ticket.cli import argfiles, batch, errors
from lottery_ticket.experiments import (control_runs, instability, lottery, oneshot,
                                        prune_at_init, single_run, supermask)
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, runs
from lottery_ticket.mnist_fc import constants as mnist_fc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "docs", "reference")
PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


def _page(name: str) -> str:
    with open(os.path.join(REFERENCE, name), encoding="utf-8") as f:
        return f.read()


def _rows(text: str, heading: str = None) -> list:
    """The rows of the tables of a page (or of one `## heading` section): each a
    list of cells, the header and separator rows left out."""
    if heading is not None:
        sections = re.split(r"^## ", text, flags=re.M)
        matching = [s for s in sections if s.split("\n", 1)[0].strip() == heading]
        assert matching, f"no section '## {heading}'"
        text = matching[0]
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(cells)
    return [row for row in rows if row[0] not in ("path", "key", "status")]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"not one code span: {cell!r}"
    return match.group(1)


# ------------------------------------------------------------- a real experiment


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """An experiment root holding a trial with a run of every kind (about 20 s)."""
    root = tmp_path_factory.mktemp("experiment")
    data = root.parent / (root.name + "_data")
    data.mkdir()
    # A data set registered without a file list is identified by its location's files.
    (data / "examples.bin").write_bytes(b"not read")
    config = ExperimentConfig().replace(
        dataset=register_synthetic_dataset(), data_location=str(data), validation_size=100,
        layers=[(16, "relu"), (10, None)], prune_percents={"layer0": 0.2, "layer1": 0.1},
        training_len=("iterations", 20), batch_size=20, test_interval=10,
        validate_interval=10, levels=1, rewind_iteration=10, xla="off")
    trial = str(root / "trial1")
    lottery.run_trial(trial, config, seed=1, progress=False)
    ticket, level0 = paths.run(trial, 1), paths.run(trial, 0)
    oneshot.run_oneshot(trial, config, [1], seed=1, progress=False)
    prune_at_init.run_prune_at_init(trial, config.replace(rewind_iteration=0,
                                                          prune_scores="snip"),
                                    [1], seed=1, progress=False)
    control_runs.reinitialize(paths.run(trial, 1, "reinit", 1), paths.masks(ticket),
                              seed=1001)
    control_runs.rearrange(paths.run(trial, 1, "rearrange", 1), paths.masks(ticket),
                           paths.initial(ticket), seed=1001)
    control_runs.random_prune(paths.run(trial, 1, "random_prune", 1), paths.masks(ticket),
                              paths.rewind(level0, 10), seed=1001)
    control_runs.run_controls("reuse", [paths.run(trial, 1, "reuse", k) for k in (1, 2)],
                              paths.masks(ticket), paths.initial(ticket), seeds=[1, 2],
                              progress=False)
    with pytest.raises(runs.DivergedError):
        single_run.train(paths.run(trial, 1, "diverging"),
                         config.replace(rewind_iteration=0, learning_rate=1e30), seed=1,
                         progress=False)
    # Evaluated on a second thread while training (what a one-thread run does by default).
    single_run.train(paths.run(trial, 1, "overlapped"),
                     config.replace(rewind_iteration=0, overlap_evaluation="on"), seed=1,
                     progress=False)
    # k=5: level 0 saved no rewind5/, so a start run trains 0..5 first.
    instability.run_instability(trial, 1, 5, interpolation_points=3, progress=False)
    supermask.evaluate_trial(trial)
    return str(root)


def _tree(root: str) -> set:
    found = set()
    for parent, directories, files in os.walk(root):
        relative = os.path.relpath(parent, root)
        prefix = "" if relative == "." else relative + "/"
        found.update(prefix + name + "/" for name in directories)
        found.update(prefix + name for name in files)
    return found


def _regex(pattern: str) -> str:
    parts = re.split(r"(\{[A-Za-z_]+\}|\*)", pattern)
    return "".join("[^/]+" if PLACEHOLDER.fullmatch(part) else "[^/]*" if part == "*"
                   else re.escape(part) for part in parts)


def test_the_layout_page_lists_exactly_what_an_experiment_writes(experiment):
    page = _page("layout.md")
    tree_rows = [_code(row[0]) for row in _rows(page, "Experiment tree")]
    run_dirs = [_code(row[0]) for row in _rows(page, "Run directories")]
    inside = [_code(row[0]) for row in _rows(page, "Inside a run directory")]
    assert all(row.startswith("{run}/") for row in inside), inside
    run = "(?:" + "|".join(_regex(d.rstrip("/")) for d in run_dirs) + ")"
    patterns = {p: _regex(p) for p in tree_rows + run_dirs}
    patterns.update({p: run + _regex(p[len("{run}"):]) for p in inside})
    written = _tree(experiment)
    undocumented = sorted(path for path in written
                          if not any(re.fullmatch(r, path) for r in patterns.values()))
    never = sorted(p for p, r in patterns.items()
                   if not any(re.fullmatch(r, path) for path in written))
    assert not undocumented and not never, (
        f"written but not in docs/reference/layout.md: {undocumented}; "
        f"in docs/reference/layout.md but never written: {never}")


def _documented_keys() -> dict:
    """key pattern (a tuple of segments) -> its row's text, from done-json.md."""
    page = _page("done-json.md")
    keys = {}
    for row in _rows(page, "Every run") + _rows(page, "Only some runs"):
        keys[tuple(_code(row[0]).split("."))] = row[1]
    return keys


def _walk(value: dict, pattern: tuple, keys: dict, used: set, problems: list,
          where: str) -> None:
    for key, child in value.items():
        if pattern + (key,) in keys:
            matched = pattern + (key,)
        else:
            wild = [k for k in keys if len(k) == len(pattern) + 1 and k[:-1] == pattern
                    and PLACEHOLDER.fullmatch(k[-1])]
            if not wild:
                problems.append(f"{where}: {'.'.join(pattern + (key,))} is not documented")
                continue
            matched = wild[0]
        used.add(matched)
        has_rows = any(len(k) > len(matched) and k[:len(matched)] == matched for k in keys)
        if has_rows:
            if not isinstance(child, dict):
                problems.append(f"{where}: {'.'.join(matched)} is documented as an object, "
                                f"holds {child!r}")
            else:
                _walk(child, matched, keys, used, problems, where)


def test_the_done_json_page_lists_exactly_the_keys_runs_write(experiment):
    keys = _documented_keys()
    for key, text in keys.items():
        has_rows = any(len(k) > len(key) and k[:len(key)] == key for k in keys)
        assert text.startswith("*object*") == has_rows, (
            f"{'.'.join(key)}: marked *object* exactly when keys are listed under it")
    used, problems, count = set(), [], 0
    concerns = {name: {field.name for field in dataclasses.fields(cls)}
                for name, cls in config_lib.CONCERNS}
    for relative in runs.complete_runs(experiment):
        with open(os.path.join(experiment, relative), encoding="utf-8") as f:
            done = json.load(f)
        count += 1
        _walk(done, (), keys, used, problems, relative)
        config = done["run_info"]["config"]
        assert {name: set(fields) for name, fields in config.items()} == concerns, relative
    assert count >= 12  # two levels, one-shot, prune at init, 5 controls, 3 instability runs
    never = sorted(".".join(key) for key in set(keys) - used)
    assert not problems and not never, "\n".join(
        problems + [f"in docs/reference/done-json.md but in no run's done.json: {never}"])


def test_the_diverged_json_keys_are_documented(experiment):
    documented = {_code(row[0]) for row in _rows(_page("done-json.md"), "diverged.json")}
    path = os.path.join(paths.run(os.path.join(experiment, "trial1"), 1, "diverging"),
                        runs.DIVERGED_FILENAME)
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    assert set(record) == documented
    keys = _documented_keys()
    run_info = {key[1:]: text for key, text in keys.items() if key[0] == "run_info"}
    problems = []
    _walk(record["run_info"], (), run_info, set(), problems, runs.DIVERGED_FILENAME)
    assert not problems, problems


# ------------------------------------------------------------- exit statuses


def _statuses() -> dict:
    return {int(row[0]): row[1] for row in _rows(_page("exit-statuses.md"))}


def _exit_status(function) -> int:
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(io.StringIO()):
        function()
    return exited.value.code


def _raise(error):
    def main():
        raise error
    return main


def test_the_exit_statuses_page_lists_the_statuses_the_code_exits_with():
    statuses = _statuses()
    assert set(statuses) == {0, 1, errors.EXIT_USER_ERROR, errors.EXIT_DIVERGED,
                             errors.EXIT_INTERRUPTED}
    command = importlib.import_module("lottery_ticket.mnist_fc.runners.oneshot").COMMAND
    with contextlib.redirect_stdout(io.StringIO()):
        assert command.run(["--help"]) is None  # status 0
    assert "--help" in statuses[0]
    bad_input = [_exit_status(lambda: command.run(["--no_such_flag=1"])),
                 _exit_status(lambda: errors.run_cli(_raise(ValueError("bad")))),
                 _exit_status(lambda: errors.run_cli(_raise(OSError("disk full")))),
                 _exit_status(lambda: argfiles.entry_point(mnist_fc.FAMILY,
                                                           "oneshot_argfile")(["--trials=x"]))]
    assert bad_input == [2, 2, 2, 2]
    assert statuses[2].startswith("Bad input")
    diverged = runs.DivergedError("run", 7, "test loss nan")
    assert _exit_status(lambda: errors.run_cli(_raise(diverged))) == 3
    assert "diverged" in statuses[3]
    assert _exit_status(lambda: errors.run_cli(_raise(KeyboardInterrupt()))) == 130
    assert statuses[130].startswith("Interrupted")
    line = batch.parse_lines("--output_dir=somewhere")[0]
    assert batch.Summary(total=1, failed=[line]).exit_code == 1
    assert batch.Summary(total=1, busy=[line]).exit_code == 1
    assert batch.Summary(total=1, interrupted=True).exit_code == 130
    assert "some line failed" in statuses[1]
    # Anything else is a bug: it propagates, and Python exits 1 with its traceback.
    with pytest.raises(RuntimeError):
        errors.run_cli(_raise(RuntimeError("a bug")))
    assert "traceback" in statuses[1]


# ------------------------------------------------------------- the flag pages


def _flag_reference():
    path = os.path.join(REPO, "docs", "_ext", "flag_reference.py")
    spec = importlib.util.spec_from_file_location("flag_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_flag_pages_list_every_runner_and_every_flag():
    reference = _flag_reference()
    pages = reference.pages()
    families = reference.families()
    assert {family.name for family in families} >= {"mnist_fc", "cifar10_conv",
                                                     "cifar10_resnet"}
    assert set(pages) == {"index.md", "config.md", "_runners.md"} | {
        f"{f.name}.md" for f in families}
    for family in families:  # the reference index's table: one click to each runner
        for module, _ in reference.runner_commands(family):
            name = module.rsplit(".", 1)[1]
            assert f"[{family.name}](flags/{family.name}.md#{name})" in pages["_runners.md"]
    for family in families:
        page = pages[f"{family.name}.md"]
        for module, command in reference.runner_commands(family):
            section = page.split(f"\n## {module.rsplit('.', 1)[1]}\n", 1)[1].split("\n## ")[0]
            assert f"```text\n{command.program}\n```" in section, module
            for flag in command.flags:
                if not flag.config:
                    assert f"`--{flag.name}`" in section, (module, flag.name)
                else:
                    assert f"`--{flag.name}`" in page, (module, flag.name)
        for module, flags in reference.argfile_flags(family):
            section = page.split(f"\n### {module.rsplit('.', 1)[1]}\n", 1)[1]
            section = section.split("\n### ")[0]
            assert {flag.name for flag in flags} >= {"trials", "experiment_root"}
            for flag in flags:
                assert f"`--{flag.name}`" in section, (module, flag.name)
    # The defaults are the family's, with the home directory written ~.
    location = reference.home_relative(mnist_fc.DEFAULT["data_location"])
    assert f"| `--data_location` (also `--mnist_location`) | `{location}` |" in \
        pages["mnist_fc.md"]
    assert reference.home_relative(os.path.expanduser("~/data")) == "~/data"
    for field in ExperimentConfig.fields():
        assert f"`{field}`" in pages["config.md"], field


def test_an_argfile_still_prints_its_lines_after_its_flags_were_read():
    values = argfiles.defined_flags(mnist_fc.FAMILY, "oneshot_argfile")
    assert values["oneshot_levels"].help.startswith("Comma-separated levels")
    assert values["last_level"].default == mnist_fc.DEFAULT["levels"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        argfiles.entry_point(mnist_fc.FAMILY, "oneshot_argfile")(
            ["--trials=1", "--oneshot_levels=2", "--experiment_root=/x"])
    assert printed.getvalue().startswith("--output_dir=/x/trial1/2/oneshot --seed=1")
    with pytest.raises(ValueError, match="no experiment kind has an argfile named 'nope'"):
        argfiles.defined_flags(mnist_fc.FAMILY, "nope")
