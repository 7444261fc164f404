"""Compiled functions traced once and reused; results in memory; progress reporting."""

import functools
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, synthetic_dataset
from lottery_ticket.foundations import pruning, runs, trainer
from lottery_ticket.foundations.model_fc import ModelFc

MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)
PERCENTS = {"layer0": 0.5, "layer1": 0.5, "layer2": 0.2}


class UntracedFc(ModelFc):
    """The same network without a trace key: never shares compiled functions."""

    def trace_key(self):
        return None


def _train(dataset, model, directory, **params):
    params.setdefault("test_interval", 20)
    params.setdefault("validate_interval", 30)
    return trainer.train(dataset, model, MOMENTUM, ("iterations", 60), str(directory),
                         progress=False, **params)


@pytest.fixture
def masks():
    dense = ModelFc(SMALL_FC, seed=5).build([784])
    rng = np.random.default_rng(0)
    final = {name: rng.normal(size=w.shape) for name, w in dense.weights.items()}
    return pruning.prune_by_percent(PERCENTS, dense.masks, final)


def test_later_runs_reuse_one_trace_and_give_the_numbers_of_a_fresh_one(tmp_path, masks):
    dataset = synthetic_dataset()
    first_model = ModelFc(SMALL_FC, masks=masks, seed=1)
    first = _train(dataset, first_model, tmp_path / "a")
    other = _train(dataset, ModelFc(SMALL_FC, masks=masks, seed=2), tmp_path / "b")
    again = _train(dataset, ModelFc(SMALL_FC, masks=masks, seed=1), tmp_path / "c")
    # Traced once for all three runs of this architecture, data and optimizer.
    steps = trainer.compiled_steps(dataset, ModelFc(SMALL_FC, masks=masks), MOMENTUM())
    assert steps.tracing_counts() == {"train_steps": 1, "evaluate_test": 1, "evaluate_validate": 1}
    # The optimizer's momentum and the weights were reset: seed 1 again gives seed 1's
    # numbers bit for bit, and those of a network traced afresh.
    fresh = _train(dataset, UntracedFc(SMALL_FC, masks=masks, seed=1), tmp_path / "d")
    for result in (again, fresh):
        for layer in first.final:
            np.testing.assert_array_equal(result.final[layer], first.final[layer])
        assert result.metrics == first.metrics
    assert not np.array_equal(other.final["layer0"], first.final["layer0"])
    # Each caller's model holds its own trained values, not the last run's.
    for layer, values in first_model.weights.items():
        np.testing.assert_array_equal(values, first.final[layer])
    # Pruned weights stayed exactly zero through the shared functions.
    for layer, mask in masks.items():
        assert not other.final[layer][mask == 0].any()


def test_different_architectures_or_optimizers_do_not_share(tmp_path):
    dataset = synthetic_dataset()
    _train(dataset, ModelFc(SMALL_FC, seed=0), tmp_path / "a")
    wider = {"layers": [(48, "relu"), (16, "relu"), (10, None)]}
    _train(dataset, ModelFc(wider, seed=0), tmp_path / "b")
    tanh = {"layers": [(32, "tanh"), (16, "relu"), (10, None)]}
    tanh_result = _train(dataset, ModelFc(tanh, seed=0), tmp_path / "c")
    relu_steps = trainer.compiled_steps(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM())
    tanh_steps = trainer.compiled_steps(dataset, ModelFc(tanh, seed=0), MOMENTUM())
    assert relu_steps is not tanh_steps
    adam_steps = trainer.compiled_steps(dataset, ModelFc(SMALL_FC, seed=0),
                                        tf.keras.optimizers.Adam(1e-3))
    assert adam_steps is not relu_steps
    # The tanh network really computed with tanh: its numbers are those of a fresh trace.
    fresh = _train(dataset, UntracedFc(tanh, seed=0), tmp_path / "d")
    np.testing.assert_array_equal(fresh.final["layer0"], tanh_result.final["layer0"])


def test_the_result_unpacks_as_a_pair_and_carries_metrics_and_record(tmp_path):
    result = _train(synthetic_dataset(), ModelFc(SMALL_FC, seed=0), tmp_path / "run")
    initial, final = result
    assert initial is result.initial and final is result.final
    with open(tmp_path / "run" / "metrics.json", encoding="utf-8") as f:
        assert result.metrics == json.load(f)
    assert result.metrics["test"]["iteration"] == [0, 20, 40, 60]
    on_disk = runs.read_done(str(tmp_path / "run"))
    assert json.loads(json.dumps(result.record)) == on_disk
    assert result.output_dir == str(tmp_path / "run")


def test_progress_goes_to_the_log_a_function_or_nowhere(tmp_path, caplog):
    dataset = synthetic_dataset()
    caplog.set_level(logging.INFO, logger="lottery_ticket")
    trainer.train(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM, ("iterations", 40),
                  str(tmp_path / "logged"), test_interval=20, progress_label="level 1 | ")
    lines = [r.getMessage() for r in caplog.records if "iteration" in r.getMessage()]
    assert lines and lines[-1].startswith("level 1 | iteration 40/40")
    assert "test acc" in lines[-1]
    caplog.clear()
    seen = []
    trainer.train(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM, ("iterations", 40),
                  str(tmp_path / "called"), test_interval=20,
                  progress=lambda i, n, latest: seen.append((i, n, sorted(latest))))
    assert seen == [(20, 40, ["test", "train"]), (40, 40, ["test", "train"])]
    trainer.train(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM, ("iterations", 40),
                  str(tmp_path / "silent"), test_interval=20, progress=False)
    assert not [r for r in caplog.records if "iteration" in r.getMessage()]
    with pytest.raises(TypeError, match="progress must be"):
        trainer.train(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM, ("iterations", 40),
                      str(tmp_path / "bad"), progress="yes")
    # A function of the wrong arity is refused before the run directory is made.
    with pytest.raises(TypeError, match=r"cannot be called as progress\(iteration"):
        trainer.train(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM, ("iterations", 40),
                      str(tmp_path / "arity"), progress=lambda latest: None)
    assert not (tmp_path / "arity").exists()


def test_the_rate_counts_from_the_first_iteration_trained():
    from lottery_ticket.foundations import progress
    line = progress.describe(300, 300, {}, 2.0, first_iteration=100)
    assert "100 it/s" in line
    assert "150 it/s" in progress.describe(300, 300, {}, 2.0)


class ScaledFc(ModelFc):
    """A subclass whose extra argument changes the computation, without a trace key
    of its own: it must not share the functions traced for another scale."""

    def __init__(self, hyperparameters, scale, **kwargs):
        self.scale = scale
        super().__init__(hyperparameters, **kwargs)

    def forward(self, inputs, training=False):
        return super().forward(inputs * self.scale, training)


def test_models_that_compute_differently_never_share(tmp_path):
    dataset = synthetic_dataset()
    for scale in (1.0, 3.0):
        _train(dataset, ScaledFc(SMALL_FC, scale, seed=0), tmp_path / f"scale{scale}")
    again = _train(dataset, ScaledFc(SMALL_FC, 3.0, seed=0), tmp_path / "again")
    reference = trainer.train(dataset, _unshared(ScaledFc(SMALL_FC, 3.0, seed=0)), MOMENTUM,
                              ("iterations", 60), str(tmp_path / "reference"), progress=False,
                              test_interval=20, validate_interval=30)
    np.testing.assert_array_equal(again.final["layer0"], reference.final["layer0"])
    # An instance with its own loss is not the class's computation either.
    plain = _train(dataset, ModelFc(SMALL_FC, seed=0), tmp_path / "plain")
    scaled_loss = ModelFc(SMALL_FC, seed=0)
    scaled_loss.loss = lambda logits, labels: 100.0 * ModelFc.loss(logits, labels)
    louder = _train(dataset, scaled_loss, tmp_path / "louder")
    assert louder.metrics["test"]["loss"][0] == pytest.approx(
        100 * plain.metrics["test"]["loss"][0], rel=1e-5)


def _unshared(model):
    model.trace_key = lambda: None
    return model


def test_concurrent_runs_each_get_their_own_functions(tmp_path, masks):
    import threading
    dataset = synthetic_dataset()
    sequential = {seed: _train(dataset, ModelFc(SMALL_FC, masks=masks, seed=seed),
                               tmp_path / f"sequential{seed}") for seed in (1, 2)}
    threaded = {}

    def run(seed):
        threaded[seed] = _train(dataset, ModelFc(SMALL_FC, masks=masks, seed=seed),
                                tmp_path / f"threaded{seed}", test_interval=5)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in (1, 2):
        np.testing.assert_array_equal(threaded[seed].final["layer0"],
                                      sequential[seed].final["layer0"])


def test_an_interrupted_run_leaves_the_model_trained_so_far_and_its_metrics(tmp_path):
    dataset = synthetic_dataset()
    _train(dataset, ModelFc(SMALL_FC, seed=0), tmp_path / "first")  # the functions exist

    def interrupt(iteration, total, latest):
        if iteration == 40:
            raise KeyboardInterrupt

    model = ModelFc(SMALL_FC, seed=0)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(dataset, model, MOMENTUM, ("iterations", 60),
                      str(tmp_path / "interrupted"), test_interval=20, progress=interrupt)
    initial = np.load(tmp_path / "interrupted" / "initial" / "layer0.npy")
    assert not np.array_equal(model.weights["layer0"], initial)
    with open(tmp_path / "interrupted" / "metrics.json", encoding="utf-8") as f:
        assert json.load(f)["test"]["iteration"] == [0, 20, 40]
    assert not runs.is_complete(str(tmp_path / "interrupted"))
    # The functions are free again: the next run shares them and gives fresh numbers.
    again = _train(dataset, ModelFc(SMALL_FC, seed=0), tmp_path / "again")
    fresh = _train(dataset, UntracedFc(SMALL_FC, seed=0), tmp_path / "fresh")
    np.testing.assert_array_equal(again.final["layer0"], fresh.final["layer0"])
