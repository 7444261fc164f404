"""XLA, whole-split evaluation and sparse layers: faster paths that must give the
numbers of the plain computation."""

import functools
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from conftest import synthetic_dataset
from lottery_ticket.foundations import paths, trainer
from lottery_ticket.foundations.model_fc import ModelFc

WIDE_FC = {"layers": [(120, "relu"), (60, "relu"), (10, None)]}
MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)
ADAM = functools.partial(tf.keras.optimizers.Adam, learning_rate=1e-3)


def sparse_masks(density=0.03, seed=0):
    """layer0 and layer1 below 5% density, the output layer dense."""
    rng = np.random.default_rng(seed)
    return {"layer0": (rng.random((784, 120)) < density).astype(np.float32),
            "layer1": (rng.random((120, 60)) < density * 2).astype(np.float32),
            "layer2": np.ones((60, 10), np.float32)}


def _train(dataset, model, directory, optimizer=MOMENTUM, iterations=60, **params):
    params.setdefault("test_interval", 20)
    params.setdefault("validate_interval", 30)
    return trainer.train(dataset, model, optimizer, ("iterations", iterations),
                         str(directory), progress=False, save_summaries=False, **params)


@pytest.mark.parametrize("optimizer", [MOMENTUM, ADAM], ids=["momentum", "adam"])
def test_sparse_layers_train_as_the_dense_masked_computation(tmp_path, optimizer):
    dataset = synthetic_dataset()
    masks = sparse_masks()
    sparse = _train(dataset, ModelFc(WIDE_FC, masks=masks, seed=3), tmp_path / "sparse",
                    optimizer, xla="on", sparse_below=0.1)
    dense = _train(dataset, ModelFc(WIDE_FC, masks=masks, seed=3), tmp_path / "dense",
                   optimizer, xla="on", sparse_below=0)
    assert sparse.record["xla"]["sparse_layers"] == ["layer0", "layer1"]
    assert dense.record["xla"]["sparse_layers"] == []
    for layer, mask in masks.items():
        # Pruned weights stay exactly zero; survivors moved.
        assert np.all(sparse.final[layer][mask == 0] == 0)
        assert not np.array_equal(sparse.final[layer], sparse.initial[layer])
        np.testing.assert_allclose(sparse.final[layer], dense.final[layer],
                                   rtol=1e-4, atol=1e-5)
    for split in ("test", "validate", "train"):
        assert sparse.metrics[split]["iteration"] == dense.metrics[split]["iteration"]
        np.testing.assert_allclose(sparse.metrics[split]["loss"], dense.metrics[split]["loss"],
                                   rtol=1e-4)
    # Saved files hold the same network as the returned one.
    saved = np.load(paths.final(str(tmp_path / "sparse")) + "/layer0.npy")
    np.testing.assert_array_equal(saved, sparse.final["layer0"])


def test_sparse_runs_are_bit_reproducible_and_share_compiled_functions(tmp_path):
    dataset = synthetic_dataset()
    first = _train(dataset, ModelFc(WIDE_FC, masks=sparse_masks(seed=1), seed=1),
                   tmp_path / "a", xla="on", sparse_below=0.1)
    # Other masks of a similar density: the same padded layout, other survivors.
    _train(dataset, ModelFc(WIDE_FC, masks=sparse_masks(seed=2), seed=2), tmp_path / "b",
           xla="on", sparse_below=0.1)
    again = _train(dataset, ModelFc(WIDE_FC, masks=sparse_masks(seed=1), seed=1),
                   tmp_path / "c", xla="on", sparse_below=0.1)
    for layer in first.final:
        np.testing.assert_array_equal(again.final[layer], first.final[layer])
    assert again.metrics == first.metrics
    steps = trainer.compiled_steps(dataset, ModelFc(WIDE_FC, masks=sparse_masks(seed=1)),
                                   MOMENTUM(), xla="on", sparse_below=0.1)
    try:
        assert steps.sparse_layers == ("layer0", "layer1")
        assert steps.tracing_counts()["train_steps"] == 1
    finally:
        trainer.finish_steps(steps, ModelFc(WIDE_FC, masks=sparse_masks(seed=1)).build([784]))


def test_a_sparser_level_reuses_the_compiled_sparse_layers_with_padding(tmp_path):
    dataset = synthetic_dataset()
    _train(dataset, ModelFc(WIDE_FC, masks=sparse_masks(0.04, seed=5), seed=1),
           tmp_path / "a", xla="on", sparse_below=0.1)
    # About 70% of the survivors: the same compiled program, with more padding.
    masks = sparse_masks(0.028, seed=6)
    padded = _train(dataset, ModelFc(WIDE_FC, masks=masks, seed=2), tmp_path / "b",
                    xla="on", sparse_below=0.1)
    plain = _train(dataset, ModelFc(WIDE_FC, masks=masks, seed=2), tmp_path / "c",
                   xla="on", sparse_below=0)
    assert padded.record["compile_seconds"] == 0
    for layer in masks:
        np.testing.assert_allclose(padded.final[layer], plain.final[layer], rtol=1e-4,
                                   atol=1e-5)
    model = ModelFc(WIDE_FC, masks=masks).build([784])
    steps = trainer.compiled_steps(dataset, model, MOMENTUM(), xla="on", sparse_below=0.1)
    try:
        kept = int(masks["layer0"].sum())
        assert kept < steps.sparse_sizes["layer0"] <= 2 * kept
        assert steps.tracing_counts()["train_steps"] == 1
    finally:
        trainer.finish_steps(steps, model)
    # A tenth of the survivors would waste most of the work: compiled again, smaller.
    fewer = ModelFc(WIDE_FC, masks=sparse_masks(0.003, seed=7)).build([784])
    small = trainer.compiled_steps(dataset, fewer, MOMENTUM(), xla="on", sparse_below=0.1)
    try:
        assert small is not steps
        assert small.sparse_sizes["layer0"] < steps.sparse_sizes["layer0"] / 2
    finally:
        trainer.finish_steps(small, fewer)


def test_snapshots_of_a_sparse_run_hold_the_trained_survivors(tmp_path):
    dataset = synthetic_dataset()
    masks = sparse_masks()
    result = _train(dataset, ModelFc(WIDE_FC, masks=masks, seed=4), tmp_path / "a",
                    xla="on", sparse_below=0.1, snapshot_iterations=(30,))
    reference = _train(dataset, ModelFc(WIDE_FC, masks=masks, seed=4), tmp_path / "b",
                       xla="on", sparse_below=0, snapshot_iterations=(30,))
    snapshot = result.snapshots[30]["layer0"]
    assert not np.array_equal(snapshot, result.initial["layer0"])
    assert not np.array_equal(snapshot, result.final["layer0"])
    np.testing.assert_allclose(snapshot, reference.snapshots[30]["layer0"], rtol=1e-4,
                               atol=1e-5)


def test_xla_setting_is_recorded_and_gives_the_plain_numbers(tmp_path, xla_auto):
    dataset = synthetic_dataset()
    on = _train(dataset, ModelFc(WIDE_FC, seed=2), tmp_path / "on", xla="on")
    off = _train(dataset, ModelFc(WIDE_FC, seed=2), tmp_path / "off", xla="off")
    auto = _train(dataset, ModelFc(WIDE_FC, seed=2), tmp_path / "auto")
    assert on.record["xla"] == {"setting": "on", "training": True, "evaluation": True,
                                "sparse_layers": []}
    assert off.record["xla"] == {"setting": "off", "training": False, "evaluation": False,
                                 "sparse_layers": []}
    assert auto.record["xla"]["setting"] == "auto" and auto.record["xla"]["training"]
    with open(tmp_path / "on" / "done.json") as file:
        assert json.load(file)["xla"]["training"] is True
    for layer in on.final:
        np.testing.assert_allclose(on.final[layer], off.final[layer], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(on.metrics["test"]["loss"], off.metrics["test"]["loss"],
                               rtol=1e-4)


def test_bad_xla_setting_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="auto, on, off"):
        _train(synthetic_dataset(), ModelFc(WIDE_FC, seed=2), tmp_path / "x", xla="yes")
    assert not (tmp_path / "x").exists()


class PythonStepFc(ModelFc):
    """Runs a Python function in its forward pass: something XLA cannot compile."""

    def forward(self, inputs, training=False):
        outputs = super().forward(inputs, training)
        doubled = tf.py_function(lambda t: t * 1.0, [outputs], tf.float32)
        return tf.ensure_shape(doubled, outputs.shape)

    def trace_key(self):
        return ("python-step",) + tuple(self._layer_specs)


def test_auto_trains_without_xla_where_it_cannot_compile_and_says_so(tmp_path, caplog,
                                                                    xla_auto):
    dataset = synthetic_dataset()
    with caplog.at_level(logging.WARNING, logger="lottery_ticket"):
        result = _train(dataset, PythonStepFc(WIDE_FC, seed=1), tmp_path / "auto")
    assert result.record["xla"]["training"] is False
    assert "cannot be compiled with XLA" in caplog.text
    with pytest.raises(tf.errors.InvalidArgumentError):
        _train(dataset, PythonStepFc(WIDE_FC, seed=1), tmp_path / "on", xla="on")


def test_a_split_is_evaluated_in_one_call_in_chunks(tmp_path):
    dataset = synthetic_dataset()
    model = ModelFc(WIDE_FC, seed=6).build([784])
    model.evaluation_chunk = 70  # 200 test examples: two full chunks and 60 more
    steps = trainer.CompiledSteps(dataset, model, MOMENTUM(), xla="off")
    loss, accuracy = steps.evaluate("test")
    x, y = dataset.test
    logits = model(x)
    assert loss == pytest.approx(float(model.loss(logits, y)), rel=1e-5)
    assert accuracy == pytest.approx(float(model.accuracy(logits, y)))
    steps.evaluate("test")
    assert steps.tracing_counts()["evaluate_test"] == 1


def test_dropout_draws_the_same_patterns_with_and_without_xla(tmp_path):
    from test_model_conv import ADAM as CONV_ADAM, SMALL, images
    from lottery_ticket.foundations.model_conv import ModelConv
    dataset = images()
    results = {
        xla: trainer.train(dataset, ModelConv(**SMALL, dropout=0.5, seed=1), CONV_ADAM,
                           ("iterations", 12), str(tmp_path / xla), test_interval=6,
                           progress=False, save_summaries=False, xla=xla)
        for xla in ("on", "off")}
    assert results["on"].record["xla"]["training"] and not results["off"].record["xla"]["training"]
    for layer, values in results["off"].final.items():
        # Other patterns would move the weights by about 0.05 after these steps.
        np.testing.assert_allclose(results["on"].final[layer], values, rtol=1e-4, atol=1e-6)


def test_auto_leaves_convolutions_to_tensorflow_on_a_cpu(tmp_path, xla_auto):
    from test_model_conv import ADAM as CONV_ADAM, SMALL, images
    from lottery_ticket.foundations.model_conv import ModelConv
    result = trainer.train(images(), ModelConv(**SMALL, seed=1), CONV_ADAM, ("iterations", 6),
                           str(tmp_path / "conv"), test_interval=6, progress=False,
                           save_summaries=False)
    # XLA's CPU convolutions are many times slower; on a GPU auto compiles them.
    assert result.record["xla"]["training"] is trainer.gpu_present()
    assert trainer.resolve_xla("auto", ModelFc(WIDE_FC).build([784]))[0] is True


def test_the_environment_can_say_what_auto_means(tmp_path, monkeypatch):
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "off")
    result = _train(synthetic_dataset(), ModelFc(WIDE_FC, seed=2), tmp_path / "a")
    assert result.record["xla"] == {"setting": "auto", "training": False,
                                    "evaluation": False, "sparse_layers": []}
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "sometimes")
    with pytest.raises(ValueError, match="LOTTERY_TICKET_XLA_AUTO"):
        _train(synthetic_dataset(), ModelFc(WIDE_FC, seed=2), tmp_path / "b")


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [64, 500])
def test_sparse_evaluation_gives_the_dense_evaluation_of_the_same_weights(monkeypatch, chunk):
    from lottery_ticket.foundations.training import schedule, single
    # 64: chunks that do not divide the splits (200 and 100 examples), so the loop
    # over whole chunks and the remainder are both evaluated; 500: each split is
    # one chunk of its own size.
    monkeypatch.setattr(single, "SPARSE_EVALUATION_CHUNK", chunk)
    dataset = synthetic_dataset()
    # Below SPARSE_EVALUATION_BELOW (5%) in all: evaluated through the survivors.
    model = ModelFc(WIDE_FC, masks=sparse_masks(0.015, seed=8), seed=8).build([784])
    steps = single.CompiledSteps(dataset, model, MOMENTUM(), xla="on", sparse_below=0.1)
    assert steps.sparse_layers == ("layer0", "layer1") and steps.sparse_evaluation
    steps.train_steps(schedule.batch_indices([dataset], 0, 15)[:, 0])
    # Evaluated from the survivor vectors, before they are written to the kernels.
    sparse = {split: steps.evaluate(split) for split in ("test", "validate")}
    assert {split: steps.evaluate(split) for split in sparse} == sparse  # same bits again
    steps.sync()
    for split, (loss, accuracy) in sparse.items():
        dense_loss, dense_accuracy = trainer.evaluate(steps.model, dataset, split, xla="off")
        assert loss == pytest.approx(dense_loss, rel=1e-5, abs=0)
        assert accuracy == dense_accuracy
    assert steps.tracing_counts()["evaluate_test"] == 1
    # Up to 5% the survivors evaluate faster than the dense product; above it
    # (here 6%, trained sparsely with sparse_below=0.2) the dense product does.
    for density, through_survivors in ((0.03, True), (0.06, False)):
        model = ModelFc(WIDE_FC, masks=sparse_masks(density, seed=8), seed=8).build([784])
        steps = single.CompiledSteps(dataset, model, MOMENTUM(), xla="on", sparse_below=0.2)
        assert steps.sparse_layers == ("layer0", "layer1")
        assert steps.sparse_evaluation == through_survivors


def test_transposed_chunks_hold_each_chunk_of_the_split_transposed():
    from lottery_ticket.foundations.training.single import transposed_chunks
    dataset = synthetic_dataset()
    flat = np.asarray(dataset.splits["test"][0]).reshape(200, -1)  # 200 examples
    chunks = transposed_chunks(dataset, "test", 64)
    assert chunks.features == 784 and chunks.chunk_size == 64
    assert chunks.chunks.shape == (3, 784, 64)  # chunk-major: whole chunks only
    for begin in (0, 64, 128):
        np.testing.assert_array_equal(chunks.chunk(tf.constant(begin), 64),
                                      flat[begin:begin + 64].T)
    np.testing.assert_array_equal(chunks.chunk(192, 8), flat[192:].T)
    with pytest.raises(ValueError, match="no transposed chunk of 9 examples"):
        chunks.chunk(192, 9)
    with pytest.raises(ValueError, match="row 100 does not start a chunk of 64"):
        chunks.chunk(100, 64)
    # A split smaller than a chunk is one chunk of its own size.
    whole = transposed_chunks(dataset, "test", 500)
    assert whole.chunk_size == 200 and whole.remainder is None
    np.testing.assert_array_equal(whole.chunk(0, 200), flat.T)


def test_flattened_from_recognises_only_the_chunk_itself_flattened():
    from lottery_ticket.foundations.training.single import flattened_from
    seen = {}

    @tf.function
    def graph(images):
        chunk = images[:4]
        flat = tf.reshape(chunk, [4, -1])
        seen["flat"] = flattened_from(flat, chunk)
        seen["itself"] = flattened_from(tf.identity(tf.reshape(chunk, [4, 12])), chunk)
        seen["scaled"] = flattened_from(flat * 2.0, chunk)
        seen["other rows"] = flattened_from(tf.reshape(images[4:8], [4, -1]), chunk)
        seen["regrouped"] = flattened_from(tf.reshape(chunk, [8, 6]), chunk)
        return flat

    graph(tf.zeros([10, 3, 4]))
    assert seen == {"flat": True, "itself": True, "scaled": False, "other rows": False,
                    "regrouped": False}
