"""Run identity: done.json's schema, default-aware comparison, old formats resuming."""

import os

import numpy as np
import pytest

from conftest import register_synthetic_dataset
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore


register_synthetic_dataset()

SMALL = ExperimentConfig().replace(
    dataset="synthetic_test", data_location="unused", validation_size=100,
    layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 20),
    batch_size=20, test_interval=10, validate_interval=10, levels=1)


def _mtimes(directory):
    return {os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(directory) for f in files}


def test_done_json_has_a_format_version_and_the_config_by_concern(tmp_path):
    lottery.run_trial(str(tmp_path), SMALL.replace(levels=0), seed=1)
    done = runs.read_done(paths.run(str(tmp_path), 0))
    assert done["format_version"] == runs.FORMAT_VERSION == 2
    assert set(done["run_info"]["config"]) == {"data", "model", "training", "pruning"}
    assert done["run_info"]["config"]["training"]["training_len"] == ["iterations", 20]
    assert ExperimentConfig.from_json(done["run_info"]["config"]) == SMALL.replace(levels=0)


def _as_older_run(run_dir, drop=(), format1=False):
    """Rewrites a run's done.json as a run made before some settings existed."""
    done = runs.read_done(run_dir)
    info = done["run_info"]
    nested = info["config"]
    for concern in nested.values():
        for name in drop:
            concern.pop(name, None)
    if format1:  # flat config, prune_percents beside it, no version
        flat = {k: v for concern in nested.values() for k, v in concern.items()}
        info["prune_percents"] = flat.pop("prune_percents")
        # (format 1 had no dataset either; it is kept here because the test data
        # set is not the default one.)
        for name in ("data_location", "flatten", "model", "kernel_initializer",
                     "pruning", "levels"):
            flat.pop(name, None)
        info["config"] = flat
        del done["format_version"]
    save_restore.write_json(paths.done(run_dir), done)


@pytest.mark.parametrize("format1", [False, True], ids=["format2", "format1"])
def test_a_run_made_before_a_setting_existed_still_resumes(tmp_path, format1):
    """Write a trial, pretend its runs predate settings, resume and extend it."""
    trial = str(tmp_path / "trial")
    first = lottery.run_trial(trial, SMALL, seed=3)
    for level in (0, 1):
        _as_older_run(paths.run(trial, level), drop=("kernel_initializer", "flatten"),
                      format1=format1)
    before = _mtimes(trial)
    resumed = lottery.run_trial(trial, SMALL.replace(levels=2), seed=3)
    assert [resumed[level].resumed for level in range(3)] == [True, True, False]
    assert all(_mtimes(trial)[path] == stamp for path, stamp in before.items())
    for name in first[1].final:
        np.testing.assert_array_equal(resumed[1].final[name], first[1].final[name])
    # A new setting asked with a value other than its default is still refused.
    with pytest.raises(ValueError, match=r"config\.kernel_initializer: saved 'glorot_normal', "
                                         r"asked 'he_normal'"):
        lottery.run_trial(trial, SMALL.replace(levels=2, kernel_initializer="he_normal"),
                          seed=3)


def test_resuming_with_other_settings_names_each_one(tmp_path):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, SMALL.replace(levels=0), seed=1)
    other = SMALL.replace(levels=0, learning_rate=0.05,
                          prune_percents={"layer0": 0.2, "layer1": 0.2})
    with pytest.raises(ValueError) as error:
        lottery.run_trial(trial, other, seed=1)
    message = str(error.value)
    assert "config.learning_rate: saved 0.1, asked 0.05" in message
    # A layer left out of prune_percents is a difference too (compared whole).
    assert "config.prune_percents: saved" in message
    # Where the data lives and how many levels a trial has are not its identity.
    lottery.run_trial(trial, SMALL.replace(levels=0, data_location="elsewhere"), seed=1)


def test_differences_take_a_missing_setting_at_its_default():
    recorded = {"config.a": 1, "seed": 0}
    defaults = {"config.b": "x"}
    assert runs.differences(recorded, {"config.a": 1, "config.b": "x"}, defaults) == {}
    assert runs.differences(recorded, {"config.b": "y"}, defaults) == {
        "config.b": ("x", "y")}
    assert runs.differences(recorded, {"config.c": 2}, defaults) == {"config.c": (None, 2)}
    assert runs.differences(recorded, {"seed": 1}) == {"seed": (0, 1)}


def test_identity_reads_both_formats_alike():
    nested = {"config": {"training": {"learning_rate": 0.1, "training_len": ("iterations", 5)},
                         "pruning": {"prune_percents": {"a": 0.2}, "levels": 3}},
              "seed": 1}
    flat = {"config": {"learning_rate": 0.1, "training_len": ["iterations", 5]},
            "prune_percents": {"a": 0.2}, "seed": 1}
    assert runs.identity(nested, ignore=["config.levels"]) == runs.identity(flat)


def test_clearing_an_incomplete_run_removes_only_its_files(tmp_path):
    run = tmp_path / "run"
    save_restore.save_network(str(run / "initial"), {"a": np.ones(2)})
    save_restore.write_json(str(run / "metrics.json"), {})
    (run / "notes.txt").write_text("mine")
    # No run of this project started here: nothing is deleted.
    with pytest.raises(FileExistsError, match="no run of this project started there"):
        runs.clear_incomplete(str(run))
    assert sorted(os.listdir(run)) == ["initial", "metrics.json", "notes.txt"]
    runs.mark_started(str(run))
    (run / "initial" / ".layer.npy.123.tmp").write_bytes(b"half")
    runs.clear_incomplete(str(run))
    assert sorted(os.listdir(run)) == [runs.MARKER_FILENAME, "notes.txt"]
    runs.write_done(str(run), {"iterations": 1})
    assert runs.is_complete(str(run))
    with pytest.raises(FileExistsError, match="never overwritten"):
        runs.clear_incomplete(str(run))
    assert runs.read_done(str(run))["format_version"] == runs.FORMAT_VERSION


def test_a_done_json_that_is_not_an_object_is_a_clear_error(tmp_path):
    save_restore.write_json(str(tmp_path / "done.json"), [1, 2])
    with pytest.raises(ValueError, match="not a JSON object"):
        runs.read_done(str(tmp_path))


def _older_level(trial, level=1):
    """A level of `trial` as a version before the marker left it when interrupted:
    initial/ and masks/ shaped like level 0's, a summary, metrics so far."""
    run = paths.run(trial, level)
    # Kernels only: versions before the marker saved no biases.
    initial = save_restore.kernels_only(
        save_restore.restore_network(paths.initial(paths.run(trial, 0))))
    save_restore.save_network(paths.initial(run), initial)
    save_restore.save_network(paths.masks(run), {k: np.ones_like(v) for k, v in initial.items()})
    os.makedirs(paths.summaries(run))
    with open(os.path.join(paths.summaries(run), "events.out.tfevents.1.host"), "wb") as f:
        f.write(b"x")
    save_restore.write_json(paths.metrics(run), {
        "test": {"iteration": [0], "loss": [2.3], "accuracy": [0.1]}})
    return run


def test_an_interrupted_run_of_an_older_version_is_redone(tmp_path):
    """A run interrupted before runs were marked is cleared when its content proves
    it: run files only, its layers and shapes those of a complete run of its trial."""
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, SMALL.replace(levels=0), seed=1)
    run = _older_level(trial)
    runs.clear_incomplete(run)
    assert os.listdir(run) == []
    # A file of someone else's among them: nothing is deleted.
    run = _older_level(trial, 2)
    with open(os.path.join(paths.initial(run), "notes.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(FileExistsError, match="no run of this project"):
        runs.clear_incomplete(run)
    assert sorted(os.listdir(paths.initial(run)))[-1] == "notes.txt"


def _refused_unchanged(directory):
    before = {path: open(path, "rb").read() for path in
              (os.path.join(root, f) for root, _, files in os.walk(directory) for f in files)}
    with pytest.raises(FileExistsError, match=f"{directory}.*nothing is deleted.*Move those "
                                              "files away or choose another output directory"):
        runs.clear_incomplete(directory)
    after = {path: open(path, "rb").read() for path in
             (os.path.join(root, f) for root, _, files in os.walk(directory) for f in files)}
    assert after == before and before


def test_a_folder_with_only_a_runs_file_names_is_refused_not_emptied(tmp_path):
    """Names alone prove nothing: a user's metrics.json or final/my_weights.npy stays."""
    mine = tmp_path / "U"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"my": "results"}')
    _refused_unchanged(str(mine))
    weights = tmp_path / "W"
    (weights / "final").mkdir(parents=True)
    np.save(weights / "final" / "my_weights.npy", np.arange(3.0))
    _refused_unchanged(str(weights))
    # Run-shaped files with no record of this library anywhere near: refused too.
    lone = tmp_path / "lone"
    save_restore.save_network(str(lone / "initial"), {"layer0": np.ones(2)})
    save_restore.save_network(str(lone / "masks"), {"layer0": np.ones(2)})
    save_restore.write_json(str(lone / "metrics.json"), {})
    _refused_unchanged(str(lone))


def test_an_older_level_is_refused_unless_it_matches_its_trial(tmp_path):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, SMALL.replace(levels=0), seed=1)
    # A user's metrics.json one level down, where a level would be.
    mine = paths.run(trial, 1)
    os.makedirs(mine)
    with open(paths.metrics(mine), "w") as f:
        f.write('{"my": "results"}')
    _refused_unchanged(mine)
    # Layers of other shapes than the trial's: not this trial's run.
    other = paths.run(trial, 2)
    save_restore.save_network(paths.initial(other), {"layer0": np.ones((3, 3))})
    _refused_unchanged(other)
    # A user's metrics.json beside run-shaped weights: refused, weights kept.
    run = _older_level(trial, 3)
    with open(paths.metrics(run), "w") as f:
        f.write('{"my": "results"}')
    _refused_unchanged(run)


def test_an_older_diverged_run_is_recognised_by_its_record(tmp_path):
    run = tmp_path / "run"
    save_restore.save_network(str(run / "initial"), {"layer0": np.ones(2)})
    save_restore.write_json(str(run / "diverged.json"), {
        "iteration": 3, "reason": "the training loss is nan", "run_info": {"seed": 0}})
    runs.clear_incomplete(str(run))
    assert os.listdir(run) == []
    save_restore.write_json(str(run / "diverged.json"), {"my": "notes"})
    _refused_unchanged(str(run))


def test_the_family_wrapper_keeps_the_configurations_levels_and_presets_are_identity(
        tmp_path):
    from lottery_ticket.mnist_fc import lottery_experiment
    trial = str(tmp_path / "trial")
    results = lottery_experiment.run_experiment(trial, config=SMALL.replace(levels=0), seed=2)
    assert sorted(results) == [0]
    presets = save_restore.restore_network(paths.initial(paths.run(trial, 0)))
    presets = {name: value * 2 for name, value in presets.items()}
    with pytest.raises(ValueError, match="presets: saved None, asked 'dict'"):
        lottery.run_trial(trial, SMALL.replace(levels=1), seed=2, presets=presets)
