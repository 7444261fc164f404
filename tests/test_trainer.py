"""The trainer's files, metrics, determinism and refusal to overwrite."""

import functools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, synthetic_dataset
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.model_fc import ModelFc

SGD = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)


def train_small(output_dir, seed=0, masks=None, presets=None, iterations=60, **params):
    params.setdefault("test_interval", 20)
    params.setdefault("validate_interval", 30)
    model = ModelFc(SMALL_FC, masks=masks, presets=presets, seed=seed)
    return trainer.train(synthetic_dataset(train_order_seed=seed), model, SGD,
                         ("iterations", iterations), str(output_dir), **params)


def test_writes_the_run_layout(tmp_path):
    run = tmp_path / "run"
    initial, final = train_small(run, run_info={"level": 0})
    for name in ("initial", "final", "masks"):
        saved = save_restore.restore_network(str(run / name))
        biases = ["layer0.bias", "layer1.bias", "layer2.bias"] if name != "masks" else []
        assert sorted(saved) == sorted(["layer0", "layer1", "layer2"] + biases)
    for name in initial:
        np.testing.assert_array_equal(np.load(run / "initial" / f"{name}.npy"), initial[name])
        np.testing.assert_array_equal(np.load(run / "final" / f"{name}.npy"), final[name])
        assert np.load(run / "masks" / f"{name}.npy").all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["iteration"] == [0, 20, 40, 60]
    assert metrics["validate"]["iteration"] == [0, 30, 60]
    assert metrics["train"]["iteration"] == [20, 30, 40, 60]
    assert set(metrics["test"]) == {"iteration", "loss", "accuracy"}
    assert metrics["test"]["accuracy"][-1] > metrics["test"]["accuracy"][0]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "summaries"))
    done = json.loads((run / "done.json").read_text())
    assert done["iterations"] == 60 and done["run_info"] == {"level": 0}
    assert done["op_determinism"] is False and done["model_seed"] == 0
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]


def test_epochs_count_whole_batches_per_epoch(tmp_path):
    model = ModelFc(SMALL_FC, seed=0)
    data = synthetic_dataset()
    trainer.train(data, model, SGD, ("epochs", 2), str(tmp_path / "run"), test_interval=None)
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert done["iterations"] == 2 * (400 // 20)


def test_same_seeds_give_identical_runs(tmp_path):
    _, a = train_small(tmp_path / "a", seed=4)
    _, b = train_small(tmp_path / "b", seed=4)
    _, c = train_small(tmp_path / "c", seed=5)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])
    assert (json.loads((tmp_path / "a" / "metrics.json").read_text()) ==
            json.loads((tmp_path / "b" / "metrics.json").read_text()))


def test_evaluation_intervals_do_not_change_training(tmp_path):
    _, a = train_small(tmp_path / "a", test_interval=7, validate_interval=None)
    _, b = train_small(tmp_path / "b", test_interval=None, validate_interval=None)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_masked_training_keeps_pruned_weights_zero(tmp_path):
    rng = np.random.default_rng(0)
    masks = {"layer0": (rng.random((784, 32)) < 0.2).astype(np.float32)}
    initial, final = train_small(tmp_path / "run", masks=masks)
    assert not final["layer0"][masks["layer0"] == 0].any()
    assert int((final["layer0"] != 0).sum()) == int(masks["layer0"].sum())
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert done["mask_counts"]["layer0"] == [int(masks["layer0"].sum()), 784 * 32]
    assert done["mask_counts"]["layer1"] == [32 * 16, 32 * 16]
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "masks" / "layer0.npy"),
                                  masks["layer0"])


def test_complete_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    train_small(run)
    before = {f: os.stat(run / "final" / f).st_mtime_ns for f in os.listdir(run / "final")}
    with pytest.raises(FileExistsError, match="already complete"):
        train_small(run, seed=9)
    after = {f: os.stat(run / "final" / f).st_mtime_ns for f in os.listdir(run / "final")}
    assert before == after


def test_incomplete_run_is_redone(tmp_path):
    run = tmp_path / "run"
    train_small(run)
    os.remove(run / "done.json")
    os.remove(run / "final" / "layer1.npy")
    (run / "unrelated.txt").write_text("kept")
    _, final = train_small(run)
    assert runs.is_complete(str(run))
    np.testing.assert_array_equal(np.load(run / "final" / "layer1.npy"), final["layer1"])
    assert (run / "unrelated.txt").read_text() == "kept"


def test_bad_training_len_and_missing_validation_split(tmp_path):
    with pytest.raises(ValueError, match="training_len"):
        trainer.train(synthetic_dataset(), ModelFc(SMALL_FC), SGD, ("steps", 5),
                      str(tmp_path / "a"))
    with pytest.raises(ValueError, match="no validation split"):
        trainer.train(synthetic_dataset(validate=False), ModelFc(SMALL_FC), SGD,
                      ("iterations", 5), str(tmp_path / "b"), validate_interval=5)
