"""Conv-2/4/6 (shapes, names, paper rates), dropout (training only, seeded, reusable)."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from lottery_ticket.experiments import build
from lottery_ticket.experiments.config import ExperimentConfig, ModelConfig
from lottery_ticket.foundations import pruning, trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_conv import ModelConv, paper_prune_percents

ADAM = functools.partial(tf.keras.optimizers.Adam, learning_rate=1e-3)
SMALL = dict(architecture=((4, 4),), dense_units=(16, 16))


def image_split(count, seed):
    """8x8x1 images whose class is a fixed linear function of the pixels."""
    rng = np.random.default_rng(seed)
    teacher = np.random.default_rng(99).normal(size=(64, 10))
    x = rng.random((count, 8, 8, 1), dtype=np.float32)
    y = np.argmax((x.reshape(count, -1) - 0.5) @ teacher, axis=1).astype(np.int32)
    return x, y


def images(train_order_seed=0):
    return DatasetBase(image_split(240, 1), 20, image_split(60, 2),
                       validate=image_split(40, 3), train_order_seed=train_order_seed)


def _train(dataset, model, directory, iterations=12):
    return trainer.train(dataset, model, ADAM, ("iterations", iterations), str(directory),
                         test_interval=6, validate_interval=6, progress=False,
                         save_summaries=False)


class UntracedConv(ModelConv):
    """The same network without a trace key: always traced afresh."""

    def trace_key(self):
        return None


@pytest.mark.parametrize("architecture, shapes", [
    ("conv2", {"conv0": (3, 3, 3, 64), "conv1": (3, 3, 64, 64), "fc0": (16 * 16 * 64, 256),
               "fc1": (256, 256), "output": (256, 10)}),
    ("conv4", {"conv0": (3, 3, 3, 64), "conv1": (3, 3, 64, 64), "conv2": (3, 3, 64, 128),
               "conv3": (3, 3, 128, 128), "fc0": (8 * 8 * 128, 256), "fc1": (256, 256),
               "output": (256, 10)}),
    ("conv6", {"conv0": (3, 3, 3, 64), "conv1": (3, 3, 64, 64), "conv2": (3, 3, 64, 128),
               "conv3": (3, 3, 128, 128), "conv4": (3, 3, 128, 256),
               "conv5": (3, 3, 256, 256), "fc0": (4 * 4 * 256, 256), "fc1": (256, 256),
               "output": (256, 10)}),
])
def test_paper_architectures_on_cifar10_shapes(architecture, shapes):
    model = ModelConv(architecture, seed=0).build([32, 32, 3])
    assert model.layer_names == list(shapes)
    assert {name: w.shape for name, w in model.weights.items()} == shapes
    assert all(not b.any() for b in model.biases.values())
    assert model(np.zeros([2, 32, 32, 3], np.float32)).shape == (2, 10)


def test_conv2_on_28x28x1_images():
    model = ModelConv("conv2", seed=0).build([28, 28, 1])
    assert model.weights["conv0"].shape == (3, 3, 1, 64)
    assert model.weights["fc0"].shape == (14 * 14 * 64, 256)
    assert sum(w.size for w in model.weights.values()) == 576 + 36864 + 3211264 + 65536 + 2560


def test_glorot_normal_and_seeded():
    a = ModelConv("conv2", seed=3).build([28, 28, 1]).weights
    b = ModelConv("conv2", seed=3).build([28, 28, 1]).weights
    c = ModelConv("conv2", seed=4).build([28, 28, 1]).weights
    for layer in a:
        np.testing.assert_array_equal(a[layer], b[layer])
        assert not np.array_equal(a[layer], c[layer])
    fan_in, fan_out = 9 * 64, 9 * 64  # conv1: 3x3x64 in, 3x3x64 out
    assert a["conv1"].std() == pytest.approx(np.sqrt(2 / (fan_in + fan_out)), rel=0.1)


def test_paper_prune_percents():
    assert paper_prune_percents("conv2") == {"conv0": 0.1, "conv1": 0.1, "fc0": 0.2,
                                             "fc1": 0.2, "output": 0.1}
    assert paper_prune_percents("conv6") == {**{f"conv{i}": 0.15 for i in range(6)},
                                             "fc0": 0.2, "fc1": 0.2, "output": 0.1}


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="no conv architecture 'conv3'"):
        ModelConv("conv3")
    with pytest.raises(ValueError, match=r"dropout is 1.0; .* \[0, 1\)"):
        ModelConv("conv2", dropout=1.0)
    with pytest.raises(ValueError, match="flatten=False"):
        ModelConv("conv2").build([784])


def test_dropout_only_in_training_and_inverted():
    presets = ModelConv(**SMALL, seed=0).build([8, 8, 1]).weights
    with_dropout = ModelConv(**SMALL, dropout=0.5, presets=presets, seed=0).build([8, 8, 1])
    without = ModelConv(**SMALL, presets=presets, seed=0).build([8, 8, 1])
    x = image_split(50, 5)[0]
    # Evaluation never drops: the same outputs as the network without dropout.
    np.testing.assert_array_equal(with_dropout(x).numpy(), without(x).numpy())
    first = with_dropout(x, training=True).numpy()
    second = with_dropout(x, training=True).numpy()
    assert not np.array_equal(first, second)  # a new pattern for every training call
    assert not np.array_equal(first, without(x).numpy())


def test_dropout_layer_statistics():
    class Probe(ModelConv):
        def forward(self, inputs, training=False):
            return self.dropout_layer("probe", inputs, 0.25, training)

    probe = Probe(**SMALL, seed=0).build([1000])
    np.testing.assert_array_equal(probe(tf.ones([20, 1000])).numpy(), np.ones([20, 1000]))
    # Dropped activations are 0 and kept ones scaled by 1 / (1 - rate).
    dropped = probe(tf.ones([20, 1000]), training=True).numpy()
    assert set(np.unique(dropped)) == {0.0, np.float32(1 / 0.75)}
    assert (dropped == 0).mean() == pytest.approx(0.25, abs=0.01)


def test_dropout_training_is_reproducible_and_seeded(tmp_path):
    dataset = images()
    runs = {name: _train(dataset, ModelConv(**SMALL, dropout=0.5, seed=seed), tmp_path / name)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))}
    for layer in runs["a"].final:
        np.testing.assert_array_equal(runs["a"].final[layer], runs["b"].final[layer])
    assert runs["a"].metrics == runs["b"].metrics
    assert not np.array_equal(runs["a"].final["fc0"], runs["c"].final["fc0"])


def test_dropout_under_reused_compiled_functions_equals_a_fresh_trace(tmp_path):
    dataset = images()
    first = _train(dataset, ModelConv(**SMALL, dropout=0.5, seed=1), tmp_path / "a")
    _train(dataset, ModelConv(**SMALL, dropout=0.5, seed=2), tmp_path / "b")
    again = _train(dataset, ModelConv(**SMALL, dropout=0.5, seed=1), tmp_path / "c")
    fresh = _train(dataset, UntracedConv(**SMALL, dropout=0.5, seed=1), tmp_path / "d")
    steps = trainer.compiled_steps(dataset, ModelConv(**SMALL, dropout=0.5), ADAM())
    counts = steps.tracing_counts()
    assert counts["train_steps"] == 1 and counts["evaluate_test"] == 1
    for result in (again, fresh):
        for layer in first.final:
            np.testing.assert_array_equal(result.final[layer], first.final[layer])
        assert result.metrics == first.metrics
    # Another rate is another computation: never the same compiled functions.
    other = trainer.compiled_steps(dataset, ModelConv(**SMALL, dropout=0.25), ADAM())
    assert other is not steps


def test_dropout_differs_from_no_dropout_in_training(tmp_path):
    dataset = images()
    plain = _train(dataset, ModelConv(**SMALL, seed=1), tmp_path / "plain")
    dropped = _train(dataset, ModelConv(**SMALL, dropout=0.5, seed=1), tmp_path / "dropout")
    np.testing.assert_array_equal(plain.initial["fc0"], dropped.initial["fc0"])
    assert not np.array_equal(plain.final["fc0"], dropped.final["fc0"])


def test_masks_and_dropout_compose(tmp_path):
    dataset = images()
    dense = ModelConv(**SMALL, dropout=0.5, seed=0)
    result = _train(dataset, dense, tmp_path / "dense")
    percents = {"conv0": 0.5, "conv1": 0.5, "fc0": 0.5, "fc1": 0.5, "output": 0.25}
    masks = pruning.prune(percents, dense.masks, result.final, order=dense.layer_names)
    ticket = ModelConv(**SMALL, dropout=0.5, presets=result.initial, masks=masks, seed=0)
    pruned = _train(dataset, ticket, tmp_path / "ticket")
    for layer, mask in masks.items():
        assert mask.sum() == mask.size - round(percents[layer] * mask.size)
        assert not pruned.final[layer][mask == 0].any()
        np.testing.assert_array_equal(pruned.initial[layer], result.initial[layer] * mask)
    # Unit pruning of conv filters with dropout: whole filters stay zero.
    unit_masks = pruning.prune({"conv0": 0.5}, dense.masks, result.final, selection="unit",
                               order=dense.layer_names)
    filters = ModelConv(**SMALL, dropout=0.5, presets=result.initial, masks=unit_masks,
                        seed=0)
    unit_result = _train(dataset, filters, tmp_path / "units")
    removed = unit_masks["conv0"].reshape(-1, 4).sum(axis=0) == 0
    assert removed.sum() == 2
    assert not unit_result.final["conv0"][..., removed].any()
    assert not unit_result.final["conv1"][:, :, removed, :].any()


def test_rewound_run_drops_as_level_zero_did_from_its_start():
    model = ModelConv(**SMALL, dropout=0.5, seed=0).build([8, 8, 1])
    x = image_split(10, 5)[0]
    model.set_training_step(7)
    at_seven = model(x, training=True).numpy()
    model.set_training_step(7)
    np.testing.assert_array_equal(model(x, training=True).numpy(), at_seven)


def test_registry_builds_the_conv_models_from_a_configuration():
    config = ExperimentConfig().replace(model="conv4", layers=(), dropout=0.5)
    model = build.model(config, seed=0)
    assert isinstance(model, ModelConv) and model.dropout == 0.5
    assert model.trace_key() == (((64, 64), (128, 128)), (256, 256), 10, 0.5)
    with pytest.raises(ValueError, match="conv4 has a fixed architecture"):
        build.model(config.replace(layers=((300, "relu"),)))
    with pytest.raises(ValueError, match="the fc model has no dropout"):
        build.model(ExperimentConfig().replace(dropout=0.5))
    with pytest.raises(ValueError, match=r"dropout is 1.5; it is a fraction in \[0, 1\)"):
        ModelConfig(dropout=1.5)
    assert ModelConfig().dropout == 0.0
