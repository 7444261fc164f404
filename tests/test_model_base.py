"""Masks and presets in ModelBase layers, under every optimizer and mode."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import LENET, SMALL_FC
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.model_fc import ModelFc


def random_masks(model_hparams, seed=0, keep=0.3, features=784):
    rng = np.random.default_rng(seed)
    masks, fan_in = {}, features
    for index, (units, _) in enumerate(model_hparams["layers"]):
        masks[f"layer{index}"] = (rng.random((fan_in, units)) < keep).astype(np.float32)
        fan_in = units
    return masks


def test_lenet_layer_names_shapes_and_zero_biases():
    model = ModelFc(LENET, seed=0).build([784])
    assert model.layer_names == ["layer0", "layer1", "layer2"]
    assert {k: v.shape for k, v in model.weights.items()} == {
        "layer0": (784, 300), "layer1": (300, 100), "layer2": (100, 10)}
    assert all(not b.any() for b in model.biases.values())
    # Glorot normal: std sqrt(2 / (fan_in + fan_out)).
    assert model.weights["layer0"].std() == pytest.approx(np.sqrt(2 / 1084), rel=0.05)


def test_same_seed_same_initialization_and_other_seed_differs():
    a = ModelFc(LENET, seed=3).build([784]).weights
    b = ModelFc(LENET, seed=3).build([784]).weights
    c = ModelFc(LENET, seed=4).build([784]).weights
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])


def test_presets_reproduce_initial_weights_exactly():
    original = ModelFc(LENET, seed=1).build([784]).weights
    copy = ModelFc(LENET, presets=original, seed=99).build([784]).weights
    for name in original:
        np.testing.assert_array_equal(copy[name], original[name])


def test_mask_zeroes_the_forward_pass_weights():
    masks = random_masks(LENET)
    model = ModelFc(LENET, masks=masks, seed=0).build([784])
    for name, weights in model.weights.items():
        assert not weights[masks[name] == 0].any()
        assert weights[masks[name] == 1].all()
    np.testing.assert_array_equal(model.masks["layer0"], masks["layer0"])


def test_masked_output_equals_a_network_with_zeroed_weights():
    masks = random_masks(SMALL_FC, features=20)
    model = ModelFc(SMALL_FC, masks=masks, seed=0)
    x = np.random.default_rng(0).random((5, 20), dtype=np.float32)
    logits = model(x).numpy()
    w, b = model.weights, model.biases
    h = np.maximum(x @ w["layer0"] + b["layer0"], 0)
    h = np.maximum(h @ w["layer1"] + b["layer1"], 0)
    np.testing.assert_allclose(logits, h @ w["layer2"] + b["layer2"], rtol=1e-5, atol=1e-6)


OPTIMIZERS = {
    "sgd": lambda: tf.keras.optimizers.SGD(0.5),
    "momentum": lambda: tf.keras.optimizers.SGD(0.5, momentum=0.9),
    "adam": lambda: tf.keras.optimizers.Adam(0.01),
    "adamw": lambda: tf.keras.optimizers.AdamW(0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_pruned_weights_stay_exactly_zero_while_training(optimizer_name, compiled):
    masks = random_masks(SMALL_FC, features=20)
    model = ModelFc(SMALL_FC, masks=masks, seed=0)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((32, 20), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, 32).astype(np.int32))
    model(x)
    before = model.weights
    optimizer = OPTIMIZERS[optimizer_name]()

    def step():
        with tf.GradientTape() as tape:
            loss = model.loss(model(x, training=True), y)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    if compiled:
        step = tf.function(step)
    for _ in range(20):
        step()
    after = model.weights
    for name, mask in masks.items():
        assert not after[name][mask == 0].any(), name
        # The raw kernel too: no optimizer state leaks into pruned positions.
        assert not model._kernels[name].numpy()[mask == 0].any(), name
        assert not np.array_equal(after[name][mask == 1], before[name][mask == 1]), name


def test_mask_variables_are_not_trainable():
    model = ModelFc(SMALL_FC, masks=random_masks(SMALL_FC, features=20)).build([20])
    names = [v.name for v in model.trainable_variables]
    assert len(names) == 6 and not any("mask" in n for n in names)


def test_preset_shape_mismatch_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"layer1.*\(5, 5\).*\(300, 100\)"):
        ModelFc(LENET, presets={"layer1": np.zeros((5, 5))}).build([784])


def test_mask_shape_mismatch_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"layer0.*\(784, 30\).*\(784, 300\)"):
        ModelFc(LENET, masks={"layer0": np.ones((784, 30))}).build([784])


def test_unknown_layer_in_presets_is_an_error():
    with pytest.raises(ValueError, match="layer7"):
        ModelFc(LENET, presets={"layer7": np.zeros((3, 3))}).build([784])


def test_non_binary_mask_is_an_error():
    with pytest.raises(ValueError, match="other than 0 and 1"):
        ModelFc(LENET, masks={"layer2": np.full((100, 10), 0.5)})


def test_weights_before_build_is_a_clear_error():
    with pytest.raises(RuntimeError, match="build"):
        _ = ModelFc(LENET).weights


class TinyConv(ModelBase):
    def forward(self, inputs, training=False):
        x = self.conv2d_layer("conv0", inputs, 4, 3, activation="relu")
        x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
        return self.dense_layer("dense0", x, 10)


def test_conv_layer_integrates_masks_and_presets():
    preset = np.random.default_rng(0).normal(size=(3, 3, 1, 4)).astype(np.float32)
    mask = np.zeros((3, 3, 1, 4), np.float32)
    mask[1, 1] = 1
    model = TinyConv(presets={"conv0": preset}, masks={"conv0": mask})
    x = np.random.default_rng(1).random((2, 6, 6, 1), dtype=np.float32)
    model(x)
    np.testing.assert_array_equal(model.weights["conv0"], preset * mask)
    optimizer = tf.keras.optimizers.Adam(0.1)
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = model.loss(model(x), tf.constant([1, 2]))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
    assert not model.weights["conv0"][mask == 0].any()
    with pytest.raises(ValueError, match=r"conv0.*\(3, 3, 2, 4\).*\(3, 3, 1, 4\)"):
        TinyConv(masks={"conv0": np.ones((3, 3, 2, 4))})(x)
