"""Control runs trained together (experiments.control_runs.run_controls and the
runners' --population): each run's files are its single control run's, complete
runs are read back, and the command lines and argfiles group runs cleanly."""

import json
import os
import shlex

import numpy as np
import pytest

from lottery_ticket.cli import argfiles
from lottery_ticket.cli import batch
from lottery_ticket.cli import runners
from lottery_ticket.experiments import control_runs
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import lottery_experiment
from lottery_ticket.mnist_fc.argfiles import reinitialize_argfile
from lottery_ticket.mnist_fc.runners import random_prune as random_prune_runner
from lottery_ticket.mnist_fc.runners import rearrange as rearrange_runner
from lottery_ticket.mnist_fc.runners import reinitialize as reinitialize_runner

from conftest import register_synthetic_dataset
from test_cli import assert_one_error, call, files_under, run_in_process

TINY = constants.DEFAULT.replace(training_len=("iterations", 20), test_interval=10,
                                validate_interval=10, validation_size=1000)
SEEDS = (1001, 1002, 1003)


@pytest.fixture(scope="module")
def trial(tmp_path_factory, fashion_mnist_dir):
    """A real one-level lottery trial, tiny, on Fashion-MNIST."""
    directory = str(tmp_path_factory.mktemp("control_population") / "trial1")
    lottery_experiment.run_experiment(directory, fashion_mnist_dir, TINY, levels=1, seed=1)
    return directory


def _ticket(trial):
    ticket = paths.run(trial, 1)
    return paths.masks(ticket), paths.initial(ticket), paths.initial(paths.run(trial, 0))


def _done(run):
    with open(paths.done(run), encoding="utf-8") as f:
        return json.load(f)


def _files(run):
    """A run's files, with the summaries' event files (named by time and host) counted."""
    return sorted("summaries/events" if name.startswith("summaries/events.out.tfevents")
                  else name for name in files_under(run) if not name.startswith("."))


def _assert_same_run(single, member, size, index):
    """`member` (trained in a population) holds what the single run `single` holds."""
    assert _files(member) == _files(single)
    for part in ("masks", "initial", "final"):
        mine = save_restore.restore_network(os.path.join(member, part))
        theirs = save_restore.restore_network(os.path.join(single, part))
        assert sorted(mine) == sorted(theirs)
        for name in theirs:
            if part == "masks":
                np.testing.assert_array_equal(mine[name], theirs[name])
            else:
                np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-5, atol=1e-6)
    info = _done(member)["run_info"]
    assert info.pop("population") == {"size": size, "member": index}
    assert info == _done(single)["run_info"]
    with open(paths.metrics(member), encoding="utf-8") as f:
        mine = json.load(f)
    with open(paths.metrics(single), encoding="utf-8") as f:
        theirs = json.load(f)
    for split, values in theirs.items():
        assert mine[split]["iteration"] == values["iteration"]
        np.testing.assert_allclose(mine[split]["loss"], values["loss"], rtol=1e-4, atol=1e-5)


def _stamps(directories):
    return [os.stat(paths.done(directory)).st_mtime_ns for directory in directories]


def test_a_population_of_reinit_runs_equals_the_single_runs(trial):
    masks, _, _ = _ticket(trial)
    singles = [paths.run(trial, 1, "reinit", run_id) for run_id in (1, 2, 3)]
    members = [paths.run(trial, 1, "reinit", run_id) for run_id in (4, 5, 6)]
    for run, seed in zip(singles, SEEDS):
        control_runs.reinitialize(run, masks, seed=seed, train_order_seed=1)
    results = control_runs.run_controls("reinit", members, masks, seeds=SEEDS,
                                        train_order_seed=1, progress=False)
    for index, (single, member) in enumerate(zip(singles, members)):
        _assert_same_run(single, member, 3, index)
        final = save_restore.kernels_only(save_restore.restore_network(paths.final(member)))
        assert sorted(final) == sorted(results[index][1])
        for name, values in final.items():
            np.testing.assert_array_equal(results[index][1][name], values)

    # Rerunning trains nothing: the population reads back its own runs and the single
    # runs, and a single control reads back a population member.
    stamps = _stamps(singles + members)
    again = control_runs.run_controls("reinit", members, masks, seeds=SEEDS,
                                      train_order_seed=1, progress=False)
    control_runs.run_controls("reinit", singles, masks, seeds=SEEDS, train_order_seed=1,
                              progress=False)
    control_runs.reinitialize(members[0], masks, seed=SEEDS[0], train_order_seed=1)
    assert _stamps(singles + members) == stamps
    for name, values in results[2][1].items():
        np.testing.assert_array_equal(again[2][1][name], values)

    # A complete run with another identity is refused before anything trains.
    fresh = paths.run(trial, 1, "reinit", 9)
    with pytest.raises(ValueError, match="control_seed: saved 1001, asked 1005"):
        control_runs.run_controls("reinit", [singles[0], fresh], masks, seeds=[1005, 1006],
                                  train_order_seed=1, progress=False)
    assert not os.path.exists(paths.done(fresh))


@pytest.mark.parametrize("name", ["random_prune", "rearrange"])
def test_a_population_from_the_command_line(trial, name, capsys):
    masks, initial, level0 = _ticket(trial)
    presets = level0 if name == "random_prune" else initial
    single_fn = control_runs.CONTROL_FUNCTIONS[name]
    singles = [paths.run(trial, 1, name, run_id) for run_id in (1, 2, 3)]
    for run, seed in zip(singles, SEEDS):
        single_fn(run, masks, presets, seed=seed, train_order_seed=1)
    # One member is already complete (made alone); the other two train together.
    first = paths.run(trial, 1, name, 4)
    single_fn(first, masks, presets, seed=SEEDS[0], train_order_seed=1)
    stamp = _stamps([first])
    command = (random_prune_runner if name == "random_prune" else rearrange_runner).COMMAND
    code, out, err = run_in_process(
        command, [f"--output_dir={first}", f"--masks={masks}", f"--presets={presets}",
                  f"--seed={SEEDS[0]}", "--train_order_seed=1", "--population=3"], capsys)
    assert code == 0, err
    members = [first] + [paths.run(trial, 1, name, run_id) for run_id in (5, 6)]
    assert out.splitlines() == [f"run directory: {member}" for member in members]
    assert _stamps([first]) == stamp
    assert "population" not in _done(first)["run_info"]  # read back, not retrained
    _assert_same_run(singles[1], members[1], 2, 0)
    _assert_same_run(singles[2], members[2], 2, 1)


def test_controls_of_a_rewound_ticket_train_together_from_its_snapshot(tmp_path):
    # Late resetting: the runs start at iteration K from the snapshot (biases
    # included), as their single runs do.
    config = ExperimentConfig().replace(
        dataset=register_synthetic_dataset(), data_location="unused", validation_size=100,
        layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 40),
        batch_size=20, test_interval=10, validate_interval=10, levels=1,
        rewind_iteration=10, xla="off")
    trial = str(tmp_path / "trial3")
    lottery.run_trial(trial, config, seed=3, progress=False)
    ticket = paths.run(trial, 1)
    singles = [paths.run(trial, 1, "reuse", run_id) for run_id in (1, 2)]
    for run, seed in zip(singles, SEEDS):
        control_runs.reinitialize(run, paths.masks(ticket), paths.initial(ticket), "reuse",
                                  seed)
    members = [paths.run(trial, 1, "reuse", run_id) for run_id in (3, 4)]
    control_runs.run_controls("reuse", members, paths.masks(ticket), paths.initial(ticket),
                              seeds=SEEDS[:2], progress=False)
    for index, (single, member) in enumerate(zip(singles, members)):
        _assert_same_run(single, member, 2, index)
        assert _done(member)["start_iteration"] == 10


@pytest.mark.parametrize("output_dir, extra, fragments", [
    ("{trial}/1/reinit1", ["--population=0"], ["--population=0", "number of runs"]),
    ("{trial}/1/reinit", ["--population=2"], ["--output_dir", "reinit1"]),
    ("{trial}/1/reinit01", ["--population=2"], ["--output_dir", "reinit1"]),
])
def test_bad_population_is_one_error_line(trial, tmp_path, output_dir, extra, fragments,
                                          capsys):
    masks, _, _ = _ticket(trial)
    run_dir = output_dir.format(trial=tmp_path / "trial1")
    code, out, err = run_in_process(
        reinitialize_runner.COMMAND,
        [f"--output_dir={run_dir}", f"--masks={masks}", "--seed=1001"] + extra, capsys)
    assert_one_error(code, err, *fragments)
    assert out == ""
    assert files_under(tmp_path) == []


def _flag(line, name, default=None):
    return next((arg.split("=", 1)[1] for arg in line if arg.startswith(f"--{name}=")),
                default)


def test_argfile_groups_the_runs_of_a_level(capsys):
    reinitialize_argfile.main(["--trials=2", "--last_level=2", "--runs_per_level=3",
                               "--runs_per_process=2", "--experiment_root=/exp",
                               "--mnist_location=/data"])
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    expected = []
    for trial in (1, 2):
        for level in (1, 2):
            for run_id, size in ((1, "2"), (3, None)):
                expected.append((paths.run(paths.trial("/exp", trial), level, "reinit", run_id),
                                 str(1000 * trial + run_id), str(trial), size))
    assert [(batch.output_dir_of(line), _flag(line, "seed"), _flag(line, "train_order_seed"),
             _flag(line, "population")) for line in lines] == expected
    # The batch runner keeps each line under its first run, and no two lines collide.
    parsed = batch.parse_lines("\n".join(shlex.join(line) for line in lines))
    assert [line.output_dir for line in parsed] == [item[0] for item in expected]

    capsys.readouterr()
    code = call(reinitialize_argfile.main, ["--runs_per_process=0"])
    out, err = capsys.readouterr()
    assert_one_error(code, err, "--runs_per_process=0")
    assert out == ""


@pytest.mark.parametrize("runs_per_process", [2, 3, 5])
def test_grouped_lines_make_the_runs_and_seeds_of_the_single_lines(runs_per_process):
    def runs_of(lines):
        made = []
        for line in map(shlex.split, lines):
            population = int(_flag(line, "population", "1"))
            seed = int(_flag(line, "seed"))
            dirs = runners.control_run_dirs(_flag(line, "output_dir"), population)
            rest = [arg for arg in line if not arg.startswith(("--output_dir=", "--seed=",
                                                               "--population="))]
            made += [(d, seed + k, tuple(rest)) for k, d in enumerate(dirs)]
        return made

    arguments = ("rearrange", 2, 1, 1, 2, 4, "/exp", "lottery", "/data", None, "level")
    single = argfiles.control_lines(*arguments)
    grouped = argfiles.control_lines(*arguments, runs_per_process=runs_per_process)
    assert len(grouped) == 2 * 2 * -(-4 // runs_per_process)
    assert runs_of(grouped) == runs_of(single)
