"""The trainer's parts (preparation, compiled steps) and the experiment's resetting."""

import functools
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, synthetic_dataset
from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import pruning
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.model_fc import ModelFc

SGD = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}


def _sparse_masks(seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    return {"layer0": (rng.random((784, 32)) < density).astype(np.float32),
            "layer1": (rng.random((32, 16)) < density).astype(np.float32)}


# -- prepare_run --------------------------------------------------------------


def test_prepare_run_builds_saves_and_refuses_a_complete_run(tmp_path):
    run = tmp_path / "run"
    model = ModelFc(SMALL_FC, masks=_sparse_masks(), seed=0)
    total, initial = trainer.prepare_run(synthetic_dataset(), model, ("epochs", 3), str(run),
                                         validate_interval=5)
    assert total == 3 * (400 // 20) and model.built
    for name, weights in model.get_current_weights().items():
        np.testing.assert_array_equal(initial[name], weights)
        np.testing.assert_array_equal(np.load(run / "initial" / f"{name}.npy"), weights)
        np.testing.assert_array_equal(np.load(run / "masks" / f"{name}.npy"),
                                      model.masks[name])
    (run / "done.json").write_text(json.dumps({}))
    with pytest.raises(FileExistsError, match="already complete"):
        trainer.prepare_run(synthetic_dataset(), ModelFc(SMALL_FC), ("iterations", 5),
                            str(run))
    with pytest.raises(ValueError, match="no validation split"):
        trainer.prepare_run(synthetic_dataset(validate=False), ModelFc(SMALL_FC),
                            ("iterations", 5), str(tmp_path / "other"), validate_interval=5)
    assert not (tmp_path / "other").exists()


# -- CompiledSteps --------------------------------------------------------------


@pytest.mark.parametrize("chunk", [10000, 64])  # one chunk; uneven chunks (200 = 3*64 + 8)
def test_evaluate_matches_a_direct_computation(chunk):
    dataset = synthetic_dataset()
    model = ModelFc(SMALL_FC, masks=_sparse_masks(), seed=2)
    model.evaluation_chunk = chunk  # a model's own chunk size (ModelConv: 1,000)
    steps = trainer.CompiledSteps(dataset, model, SGD())
    for split in ("test", "validate"):
        x, y = dataset.splits[split]
        logits = model(x)
        loss, accuracy = steps.evaluate(split)
        assert isinstance(loss, float) and isinstance(accuracy, float)
        assert loss == pytest.approx(float(model.loss(logits, y)), rel=1e-5)
        assert accuracy == pytest.approx(float(model.accuracy(logits, y)), abs=1e-6)


def test_train_steps_change_only_unmasked_weights():
    dataset = synthetic_dataset()
    masks = _sparse_masks(seed=1)
    model = ModelFc(SMALL_FC, masks=masks, seed=1)
    steps = trainer.CompiledSteps(dataset, model, SGD())
    before = model.get_current_weights()
    indices = dataset.batch_indices(0, 5)
    first_batch_loss = float(model.loss(model(tf.gather(dataset.train[0], indices[0])),
                                        dataset.train[1][indices[0]]))

    loss, accuracy = steps.train_steps(indices)

    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    assert loss != first_batch_loss  # a mean over five batches, not just the first
    after = model.get_current_weights()
    for name in before:
        mask = model.masks[name].astype(bool)
        assert not after[name][~mask].any(), name
        np.testing.assert_array_equal(after[name][~mask], before[name][~mask])
        assert (after[name][mask] != before[name][mask]).mean() > 0.5, name


def test_train_steps_mean_is_taken_before_each_update():
    dataset = synthetic_dataset()
    model = ModelFc(SMALL_FC, seed=3)
    steps = trainer.CompiledSteps(dataset, model, SGD())
    indices = dataset.batch_indices(0, 1)
    x, y = tf.gather(dataset.train[0], indices[0]), dataset.train[1][indices[0]]
    logits = model(x, training=True)
    loss, accuracy = steps.train_steps(indices)
    assert loss == pytest.approx(float(model.loss(logits, y)), rel=1e-6)
    assert accuracy == pytest.approx(float(model.accuracy(logits, y)))


# -- experiment(reset_weights=...) ---------------------------------------------


def _experiment(tmp_path, levels=2, make_model=None, **kwargs):
    make_model = make_model or (lambda level, presets, masks: ModelFc(
        SMALL_FC, presets=presets, masks=masks, seed=0))

    def train_model(level, dataset, model):
        return trainer.train(dataset, model, SGD, ("iterations", 20),
                             str(tmp_path / str(level)), test_interval=10)

    return experiment.experiment(synthetic_dataset, make_model, train_model,
                                 functools.partial(pruning.prune_by_percent, PERCENTS),
                                 levels, **kwargs)


def test_reset_to_level0_final_weights(tmp_path):
    seen = []

    def to_final(level_0):
        seen.append(level_0)
        return level_0.final

    results = _experiment(tmp_path, reset_weights=to_final)
    assert len(seen) == 1 and seen[0] is results[0]
    for level in (1, 2):
        for name, mask in results[level].masks.items():
            expected = results[0].final[name] * mask
            assert results[level].initial[name].tobytes() == expected.tobytes(), (level, name)
            assert not np.array_equal(results[level].initial[name],
                                      results[0].initial[name] * mask)
    assert runs.is_complete(str(tmp_path / "2"))


def test_reset_to_a_fixed_dict(tmp_path):
    rng = np.random.default_rng(11)
    fixed = {"layer0": rng.normal(size=(784, 32)).astype(np.float32),
             "layer1": rng.normal(size=(32, 16)).astype(np.float32),
             "layer2": rng.normal(size=(16, 10)).astype(np.float32)}
    results = _experiment(tmp_path, levels=1, reset_weights=lambda level_0: fixed)
    for name, mask in results[1].masks.items():
        assert results[1].initial[name].tobytes() == (fixed[name] * mask).tobytes(), name
        assert not np.array_equal(results[1].initial[name], results[0].initial[name] * mask)


def test_custom_reset_with_a_careless_make_model_is_caught(tmp_path):
    def careless(level, presets, masks):
        return ModelFc(SMALL_FC, masks=masks, seed=level)  # forgets presets

    with pytest.raises(RuntimeError, match="level 1 did not start from the weights "
                                           "reset_weights returned"):
        _experiment(tmp_path, levels=1, make_model=careless,
                    reset_weights=lambda level_0: level_0.final)


def test_reset_weights_returning_none_is_refused(tmp_path):
    with pytest.raises(TypeError, match="reset_weights returned None"):
        _experiment(tmp_path, levels=1, reset_weights=lambda level_0: None)
