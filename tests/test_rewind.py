"""Late resetting (rewinding): the snapshot at iteration K, levels trained from K."""

import os

import numpy as np
import pytest

from conftest import interrupting, register_synthetic_dataset
from lottery_ticket.experiments import build, control_runs, lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, runs, save_restore, trainer


register_synthetic_dataset()

K = 10
SMALL = ExperimentConfig().replace(
    dataset="synthetic_test", data_location="unused", validation_size=100,
    layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 40),
    batch_size=20, test_interval=10, validate_interval=10, levels=1)
REWOUND = SMALL.replace(rewind_iteration=K)


def _mtimes(directory):
    return {os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(directory) for f in files}


def _files(directory):
    return sorted(os.path.relpath(os.path.join(root, f), directory)
                  for root, _, files in os.walk(directory) for f in files
                  if not f.startswith("events.out"))


def _assert_same(a, b):
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.fixture(scope="module")
def rewound_trial(tmp_path_factory):
    trial = str(tmp_path_factory.mktemp("rewind") / "trial")
    return trial, lottery.run_trial(trial, REWOUND, seed=3, progress=False)


def test_level1_starts_from_the_snapshot_at_k_under_its_mask(rewound_trial):
    trial, results = rewound_trial
    snapshot_dir = paths.rewind(paths.run(trial, 0), K)
    assert os.path.basename(snapshot_dir) == "rewind10"
    snapshot = save_restore.restore_network(snapshot_dir)
    masks = results[1].masks
    assert int(masks["layer0"].sum()) == 784 * 32 - round(0.2 * 784 * 32)
    assert set(masks) == {"layer0", "layer1", "layer2"}
    for name in masks:
        np.testing.assert_array_equal(results[1].initial[name], snapshot[name] * masks[name])
        assert not np.array_equal(results[1].initial[name],
                                  results[0].initial[name] * masks[name])
    on_disk = save_restore.restore_network(paths.initial(paths.run(trial, 1)))
    _assert_same(save_restore.kernels_only(on_disk), results[1].initial)
    # initial/ holds the biases the level started from: level 0's at K.
    for name in masks:
        np.testing.assert_array_equal(on_disk[f"{name}.bias"], snapshot[f"{name}.bias"])


def test_the_snapshot_is_what_level0_held_at_k(rewound_trial, tmp_path):
    trial, _ = rewound_trial
    snapshot = save_restore.restore_network(paths.rewind(paths.run(trial, 0), K))
    assert sorted(snapshot) == ["layer0", "layer0.bias", "layer1", "layer1.bias", "layer2",
                                "layer2.bias"]
    # The same seeds trained only K iterations.
    model = build.model(SMALL, seed=3)
    trainer.train(build.dataset(SMALL, 3), model, build.optimizer_fn(SMALL),
                  ("iterations", K), str(tmp_path / "short"), test_interval=10,
                  validate_interval=10, progress=False)
    _assert_same(snapshot, model.get_current_weights(include_biases=True))
    assert snapshot["layer0.bias"].any()  # trained biases, not their zero start


def test_rewound_level_trains_from_k_to_the_end_on_level0s_batches(rewound_trial, tmp_path):
    trial, results = rewound_trial
    done = runs.read_done(paths.run(trial, 1))
    assert done["iterations"] == 40 and done["start_iteration"] == K
    assert done["run_info"]["config"]["training"]["rewind_iteration"] == K
    assert runs.read_done(paths.run(trial, 0))["snapshot_iterations"] == [K]
    for split in ("test", "validate"):
        assert results[1].metrics[split]["iteration"] == [10, 20, 30, 40]
        assert results[0].metrics[split]["iteration"] == [0, 10, 20, 30, 40]
    assert results[1].metrics["train"]["iteration"] == [20, 30, 40]
    # Plain SGD keeps no state, so continuing the dense network from its snapshot at K
    # with iterations K..N must give level 0's final weights bit for bit: the batches
    # from K on are level 0's.
    dataset = build.dataset(REWOUND, 3)
    snapshot = save_restore.restore_network(paths.rewind(paths.run(trial, 0), K))
    continued = trainer.train(dataset, build.model(REWOUND, snapshot, None, seed=3),
                              build.optimizer_fn(REWOUND), REWOUND["training_len"],
                              str(tmp_path / "continued"), test_interval=10,
                              start_iteration=K, progress=False)
    _assert_same(continued.final, results[0].final)


def test_rewind_zero_writes_todays_files(tmp_path):
    assert ExperimentConfig()["rewind_iteration"] == 0
    results = lottery.run_trial(str(tmp_path / "trial"), SMALL, seed=3, progress=False)
    run0 = paths.run(str(tmp_path / "trial"), 0)
    assert sorted(os.listdir(run0)) == [".lock", ".lottery_ticket_run", "done.json", "final",
                                        "initial", "masks", "metrics.json", "summaries"]
    # initial/ and final/ hold each layer's kernel and bias, masks/ the kernels' masks.
    layers = ("layer0", "layer1", "layer2")
    assert [f for f in _files(run0) if f.endswith(".npy")] == sorted(
        [f"{kind}/{name}.npy" for kind in ("final", "initial") for layer in layers
         for name in (layer, f"{layer}.bias")] + [f"masks/{layer}.npy" for layer in layers])
    for level in (0, 1):
        done = runs.read_done(paths.run(str(tmp_path / "trial"), level))
        assert "start_iteration" not in done and "snapshot_iterations" not in done
        assert results[level].metrics["test"]["iteration"][0] == 0
    for name, mask in results[1].masks.items():
        np.testing.assert_array_equal(results[1].initial[name],
                                      results[0].initial[name] * mask)


def test_a_run_predating_the_setting_resumes_at_its_default(tmp_path):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, SMALL.replace(levels=0), seed=1, progress=False)
    done = runs.read_done(paths.run(trial, 0))
    del done["run_info"]["config"]["training"]["rewind_iteration"]
    save_restore.write_json(paths.done(paths.run(trial, 0)), done)
    assert lottery.run_trial(trial, SMALL.replace(levels=0), seed=1)[0].resumed
    with pytest.raises(ValueError, match=r"config\.rewind_iteration: saved 0, asked 10"):
        lottery.run_trial(trial, REWOUND, seed=1)


def test_an_interrupted_rewound_trial_resumes(rewound_trial, tmp_path, monkeypatch):
    _, reference = rewound_trial
    real_train = trainer.train
    interrupted = interrupting(real_train, os.path.join("1", "lottery"), 20)

    trial = str(tmp_path / "trial")
    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lottery.run_trial(trial, REWOUND, seed=3)
    monkeypatch.setattr(trainer, "train", real_train)
    assert runs.is_complete(paths.run(trial, 0))
    assert not runs.is_complete(paths.run(trial, 1))
    finished = _mtimes(os.path.join(trial, "0"))
    resumed = lottery.run_trial(trial, REWOUND, seed=3, progress=False)
    assert _mtimes(os.path.join(trial, "0")) == finished
    assert [resumed[level].resumed for level in (0, 1)] == [True, False]
    assert resumed[0].metrics == reference[0].metrics  # read back from metrics.json
    for level in (0, 1):
        _assert_same(resumed[level].final, reference[level].final)
        _assert_same(resumed[level].initial, reference[level].initial)


def test_a_level0_interrupted_after_its_snapshot_is_redone(tmp_path, monkeypatch):
    real_train = trainer.train
    interrupted = interrupting(real_train, os.path.join("0", "lottery"), 30)

    trial = str(tmp_path / "trial")
    config = REWOUND.replace(levels=0)
    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lottery.run_trial(trial, config, seed=3)
    monkeypatch.setattr(trainer, "train", real_train)
    stale = paths.rewind(paths.run(trial, 0), K)
    assert os.path.isdir(stale) and not runs.is_complete(paths.run(trial, 0))
    # Leftovers of another attempt: a stray layer file and another K's snapshot.
    save_restore.save_network(stale, {"layer7": np.zeros(3)})
    save_restore.save_network(paths.rewind(paths.run(trial, 0), 5), {"layer0": np.zeros(3)})
    results = lottery.run_trial(trial, config, seed=3, progress=False)
    assert sorted(os.listdir(stale)) == sorted(f"layer{i}{bias}.npy" for i in range(3)
                                               for bias in ("", ".bias"))
    assert not os.path.exists(paths.rewind(paths.run(trial, 0), 5))
    assert not results[0].resumed


def test_a_complete_level0_without_its_snapshot_is_a_clear_error(tmp_path):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, REWOUND.replace(levels=0), seed=3, progress=False)
    save_restore_dir = paths.rewind(paths.run(trial, 0), K)
    for name in os.listdir(save_restore_dir):
        os.remove(os.path.join(save_restore_dir, name))
    os.rmdir(save_restore_dir)
    with pytest.raises(ValueError, match=r"no rewind10/.*delete that run directory"):
        lottery.run_trial(trial, REWOUND, seed=3)
    assert not os.path.exists(paths.run(trial, 1))


@pytest.mark.parametrize("damage", ["missing bias", "not finite", "wrong shape"])
def test_a_damaged_snapshot_is_a_clear_error_not_a_silent_start(tmp_path, damage):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, REWOUND.replace(levels=0), seed=3, progress=False)
    snapshot = paths.rewind(paths.run(trial, 0), K)
    assert sorted(runs.read_done(paths.run(trial, 0))["snapshot_layers"]) == sorted(
        name[:-4] for name in os.listdir(snapshot))
    if damage == "missing bias":
        os.remove(os.path.join(snapshot, "layer1.bias.npy"))
        expected = r"rewind10 is incomplete: layer1\.bias\.npy missing"
    elif damage == "not finite":
        values = np.load(os.path.join(snapshot, "layer0.npy"))
        values[0, 0] = np.nan
        np.save(os.path.join(snapshot, "layer0.npy"), values)
        expected = r"rewind10/layer0\.npy holds values that are not finite"
    else:
        np.save(os.path.join(snapshot, "layer0.npy"), np.zeros((10, 32), np.float32))
        expected = r"rewind10/layer0\.npy has shape \(10, 32\), but level 0's layer0 has"
    with pytest.raises(ValueError, match=expected):
        lottery.run_trial(trial, REWOUND, seed=3, progress=False)
    assert not os.path.exists(paths.run(trial, 1))


def test_a_rewind_at_or_after_the_end_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="rewind_iteration is 40 but training_len is 40"):
        SMALL.replace(rewind_iteration=40)
    with pytest.raises(ValueError, match="rewind_iteration is -1; it must be at least 0"):
        SMALL.replace(rewind_iteration=-1)
    # In epochs the length is known only with the data: 380 examples... 20 per batch.
    epochs = SMALL.replace(training_len=("epochs", 1), rewind_iteration=20)
    with pytest.raises(ValueError, match=r"rewind_iteration is 20 but training_len .* is "
                                         r"20 iterations on this data"):
        lottery.run_trial(str(tmp_path / "trial"), epochs, seed=0)
    assert not os.path.exists(tmp_path / "trial")


def test_the_trainer_checks_its_start_and_snapshot_iterations(tmp_path):
    dataset = build.dataset(SMALL, 0)
    for params, fragment in (({"start_iteration": 40}, "start_iteration is 40"),
                             ({"snapshot_iterations": [0]}, "snapshot iteration 0"),
                             ({"start_iteration": 10, "snapshot_iterations": [10]},
                              "snapshot iteration 10"),
                             ({"snapshot_iterations": [41]}, "snapshot iteration 41")):
        with pytest.raises(ValueError, match=fragment):
            trainer.train(dataset, build.model(SMALL, seed=0), build.optimizer_fn(SMALL),
                          ("iterations", 40), str(tmp_path / "run"), progress=False,
                          **params)
    assert not os.path.exists(tmp_path / "run" / "initial")


def test_controls_take_the_rewound_weights(rewound_trial, tmp_path):
    trial, results = rewound_trial
    ticket = paths.run(trial, 1)
    snapshot_dir = paths.rewind(paths.run(trial, 0), K)
    initial, _ = control_runs.random_prune(str(tmp_path / "1" / "random_prune1"),
                                           paths.masks(ticket), snapshot_dir, seed=5,
                                           train_order_seed=3)
    done = runs.read_done(str(tmp_path / "1" / "random_prune1"))
    assert done["start_iteration"] == K  # trains like its ticket: from K to the end
    masks = save_restore.restore_network(paths.masks(str(tmp_path / "1" / "random_prune1")))
    snapshot = save_restore.restore_network(snapshot_dir)
    for name, mask in masks.items():
        np.testing.assert_array_equal(initial[name], snapshot[name] * mask)
    # reuse samples the rewound values of the ticket (its initial/ is the snapshot, masked)
    # and accepts the dense snapshot as well.
    for presets in (paths.initial(ticket), snapshot_dir):
        values = control_runs.ticket_presets(presets, results[1].masks)
        assert set(results[1].masks) <= set(values)
    reused, _ = control_runs.reinitialize(str(tmp_path / "1" / "reuse1"), paths.masks(ticket),
                                          snapshot_dir, mode="reuse", seed=5)
    for name, mask in results[1].masks.items():
        alive = mask == 1
        assert np.isin(reused[name][alive], snapshot[name][alive]).all()


def test_controls_of_a_rewound_ticket_start_from_its_snapshot_biases(rewound_trial, tmp_path):
    trial, results = rewound_trial
    ticket = paths.run(trial, 1)
    snapshot_dir, snapshot = control_runs._rewind_snapshot(paths.masks(ticket), REWOUND)
    assert snapshot_dir == paths.rewind(paths.run(trial, 0), K)
    kernels = save_restore.restore_network(paths.initial(ticket))
    presets = control_runs._with_rewound_biases(kernels, (snapshot_dir, snapshot))
    assert {"layer0.bias", "layer1.bias", "layer2.bias"} <= set(presets)
    np.testing.assert_array_equal(presets["layer1.bias"], snapshot["layer1.bias"])
    # random_prune of a rewound ticket from iteration-0 weights would compare unlike things.
    with pytest.raises(ValueError, match=r"rewound to iteration 10 .*--presets=.*rewind10"):
        control_runs.random_prune(str(tmp_path / "1" / "random_prune1"), paths.masks(ticket),
                                  paths.initial(paths.run(trial, 0)), seed=5)
    assert not (tmp_path / "1").exists()
    # rearrange trains (from the snapshot's biases) and finishes.
    control_runs.rearrange(str(tmp_path / "1" / "rearrange1"), paths.masks(ticket),
                           paths.initial(ticket), seed=5)
    assert runs.is_complete(str(tmp_path / "1" / "rearrange1"))


def test_train_refuses_level0s_initial_weights_for_a_rewound_run(rewound_trial, tmp_path):
    """Iterations K..N from the iteration-0 weights is neither a rewound ticket nor a
    reset one: train refuses it as random_prune does, with the same message."""
    from lottery_ticket.experiments import single_run
    trial, _ = rewound_trial
    ticket, level0 = paths.run(trial, 1), paths.run(trial, 0)
    messages = []
    for masks in (paths.masks(ticket), None):
        with pytest.raises(ValueError, match=r"rewound to iteration 10 .*--presets=.*rewind10") \
                as refused:
            single_run.train(str(tmp_path / "run"), REWOUND, masks=masks,
                             presets=paths.initial(level0))
        messages.append(str(refused.value))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError) as random_prune:
        control_runs.random_prune(str(tmp_path / "1" / "random_prune1"), paths.masks(ticket),
                                  paths.initial(level0), seed=5)
    assert messages[0] == messages[1] == str(random_prune.value).replace("random_prune", "train")
    # The snapshot itself is accepted: the rewound ticket, retrained.
    single_run.train(str(tmp_path / "run"), REWOUND, masks=paths.masks(ticket),
                     presets=paths.rewind(level0, K))
    assert runs.is_complete(str(tmp_path / "run"))


def test_training_arguments_say_where_each_run_starts_and_map_xla_once():
    from lottery_ticket.experiments import single_run  # pylint: disable=C0415
    level0 = single_run.training_arguments(REWOUND, level=0)
    assert (level0["start_iteration"], level0["snapshot_iterations"]) == (0, (K,))
    for level in (1, 2, None):  # later levels, and runs that are not levels (controls)
        later = single_run.training_arguments(REWOUND, level=level)
        assert (later["start_iteration"], later["snapshot_iterations"]) == (K, ())
    plain = single_run.training_arguments(SMALL, level=0)
    assert (plain["start_iteration"], plain["snapshot_iterations"]) == (0, ())
    assert (plain["training_len"], plain["test_interval"], plain["validate_interval"]) == (
        ("iterations", 40), 10, 10)
    assert single_run.training_arguments(
        SMALL.replace(validation_size=0))["validate_interval"] is None
    assert single_run.training_arguments(SMALL.replace(test_interval=0))["test_interval"] is None
    for xla, jit_compile in (("on", True), ("off", False), ("auto", None)):
        config = SMALL.replace(xla=xla, sparse_below=0.25)
        single = single_run.training_arguments(config)
        assert (single["xla"], single["sparse_below"]) == (xla, 0.25)
        assert "jit_compile" not in single
        together = single_run.training_arguments(config, population=True)
        assert together["jit_compile"] is jit_compile
        assert together["sparse_below"] == 0.25
        assert "xla" not in together and "overlap_evaluation" not in together
