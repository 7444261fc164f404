"""Small custom models on the public API: another loss, float labels, bias presets and
masks, unit pruning, a dataset without a test split (the example on
docs/howto/new-architecture.md)."""

import argparse
import functools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import (ModelBase, bias_key, sigmoid_accuracy,
                                                   sigmoid_cross_entropy, softmax_accuracy,
                                                   unit_bias_masks)
from lottery_ticket.foundations.model_fc import ModelFc

from conftest import REPO


# The example on docs/howto/new-architecture.md ("Another loss, biases, no test
# split"), exactly as written there.
EXAMPLE = '''
import functools

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import pruning, trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import (ModelBase, bias_key, sigmoid_accuracy,
                                                   sigmoid_cross_entropy, unit_bias_masks)


class TinyNet(ModelBase):
    """Two inputs, one hidden ReLU layer, one sigmoid output (given as a logit)."""

    # One output unit: binary cross-entropy, and accuracy by thresholding at 0.5.
    loss = staticmethod(sigmoid_cross_entropy)
    accuracy = staticmethod(sigmoid_accuracy)

    def __init__(self, hidden=16, presets=None, masks=None, seed=None):
        self.hidden = hidden
        super().__init__(presets, masks, seed, name="tiny_net")

    def trace_key(self):
        return ("relu",)  # the sizes are in the variables' shapes already

    def forward(self, inputs, training=False):
        x = self.dense_layer("hidden", inputs, self.hidden, activation="relu",
                             bias_initializer=tf.keras.initializers.Constant(0.1))
        return self.dense_layer("output", x, 1)


# Points inside a circle are 1.0, outside 0.0: float labels, and no test split.
point_rng = np.random.default_rng(0)


def points(count):
    x = point_rng.uniform(-1, 1, size=(count, 2)).astype(np.float32)
    return x, (np.sum(x ** 2, axis=1) < 0.5).astype(np.float32)


circle = DatasetBase(points(2000), 50, validate=points(500), train_order_seed=0)
adam = functools.partial(tf.keras.optimizers.Adam, learning_rate=0.02)

tiny = TinyNet(seed=0).build([2])
tiny_initial = tiny.get_current_weights(include_biases=True)  # "hidden", "hidden.bias", ...
tiny_trained = trainer.train(circle, tiny, adam, ("iterations", 300), "tiny_runs/dense",
                             test_interval=None, validate_interval=100, progress=False)

# Remove the quarter of the hidden units with the smallest incoming weights: their
# kernel columns, the output layer's matching rows, and their biases.
unit_masks = pruning.prune({"hidden": 0.25}, tiny.masks, tiny_trained.final,
                           selection="unit", scores="input_magnitude",
                           order=tiny.layer_names)
unit_masks.update(unit_bias_masks({"hidden": unit_masks["hidden"]}))
# Reset the survivors, biases included, to their initial values and train again.
tiny_ticket = TinyNet(presets=tiny_initial, masks=unit_masks, seed=0)
tiny_retrained = trainer.train(circle, tiny_ticket, adam, ("iterations", 300),
                               "tiny_runs/level1", test_interval=None,
                               validate_interval=100, progress=False)

pruned_units = unit_masks[bias_key("hidden")] == 0
assert pruned_units.sum() == 4 and not tiny_ticket.biases["hidden"][pruned_units].any()
assert not tiny_retrained.final["output"][pruned_units].any()
print("validation accuracy, dense and pruned:",
      tiny_trained.metrics["validate"]["accuracy"][-1],
      tiny_retrained.metrics["validate"]["accuracy"][-1])
'''


def test_readme_example_tiny_network_with_unit_pruning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(EXAMPLE, "docs example", "exec"), namespace)
    ns = argparse.Namespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})
    assert os.path.isfile("tiny_runs/level1/done.json")
    assert set(ns.tiny_initial) == {"hidden", "hidden.bias", "output", "output.bias"}
    np.testing.assert_array_equal(ns.tiny_initial["hidden.bias"], np.full(16, 0.1, np.float32))
    assert "test" not in ns.tiny_retrained.metrics
    assert ns.tiny_retrained.metrics["validate"]["accuracy"][-1] > 0.9
    # Whole units went: their kernel columns, the next layer's rows and their biases.
    pruned = ns.pruned_units
    assert (ns.unit_masks["hidden"][:, pruned] == 0).all()
    assert (ns.unit_masks["hidden"][:, ~pruned] == 1).all()
    assert (ns.unit_masks["output"][pruned] == 0).all()
    # The survivors started from their initial values, biases included.
    np.testing.assert_array_equal(ns.tiny_retrained.initial["hidden"],
                                  ns.tiny_initial["hidden"] * ns.unit_masks["hidden"])
    reset = ns.TinyNet(presets=ns.tiny_initial, masks=ns.unit_masks).build([2])
    np.testing.assert_array_equal(reset.biases["hidden"],
                                  np.where(pruned, 0.0, 0.1).astype(np.float32))


def test_the_docs_hold_the_example():
    page = open(os.path.join(REPO, "docs", "howto", "new-architecture.md"),
                encoding="utf-8").read()
    assert f"```python{EXAMPLE}```" in page

class TinyNet(ModelBase):
    loss = staticmethod(sigmoid_cross_entropy)
    accuracy = staticmethod(sigmoid_accuracy)

    def __init__(self, presets=None, masks=None, seed=None):
        super().__init__(presets, masks, seed, name="tiny_net")

    def trace_key(self):
        return ()

    def forward(self, inputs, training=False):
        x = self.dense_layer("hidden", inputs, 8, activation="relu",
                             bias_initializer=tf.keras.initializers.Constant(0.5))
        return self.dense_layer("output", x, 1)


def _points(count, seed, dtype=np.float32, shape=None):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(count, 2)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(dtype)
    return x, (y if shape is None else y.reshape(shape))


def test_sigmoid_loss_and_accuracy_values():
    logits = tf.constant([[2.0], [-1.0], [0.5], [-3.0]])
    labels = tf.constant([1.0, 1.0, 0.0, 0.0])
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)),
                        np.log1p(np.exp(0.5)), np.log1p(np.exp(-3.0))])
    assert float(sigmoid_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)
    assert float(sigmoid_accuracy(logits, labels)) == 0.5
    # Integer labels and labels shaped like the logits give the same numbers.
    assert float(sigmoid_accuracy(logits, tf.constant([[1], [1], [0], [0]]))) == 0.5
    assert float(sigmoid_cross_entropy(logits, tf.constant([1, 1, 0, 0]))) == pytest.approx(
        expected, rel=1e-6)
    # The default stays softmax over integer class ids.
    assert float(softmax_accuracy(tf.constant([[0.0, 1.0], [2.0, 0.0]]),
                                  tf.constant([1, 1]))) == 0.5


@pytest.mark.parametrize("dtype, shape, stored", [
    (np.float64, None, np.float32), (np.float32, (-1, 1), np.float32),
    (np.int64, None, np.int32), (np.bool_, None, np.int32)])
def test_labels_of_any_numeric_dtype_train_and_evaluate(tmp_path, dtype, shape, stored):
    data = DatasetBase(_points(200, 1, dtype, shape), 20, _points(50, 2, dtype, shape),
                       validate=_points(50, 3, dtype, shape), train_order_seed=0)
    assert data.train[1].dtype == stored and data.test[1].dtype == stored
    adam = functools.partial(tf.keras.optimizers.Adam, learning_rate=0.05)
    result = trainer.train(data, TinyNet(seed=0), adam, ("iterations", 40), str(tmp_path),
                           test_interval=20, validate_interval=20, progress=False)
    assert result.metrics["test"]["iteration"] == [0, 20, 40]
    assert result.metrics["test"]["accuracy"][-1] > 0.8


def test_labels_that_are_not_numbers_and_mismatched_splits_are_errors():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="labels have dtype <U1; give integer class ids or "
                                         "float targets"):
        DatasetBase((x, np.array(list("abab"))), 2)
    with pytest.raises(ValueError, match="the test split's examples"):
        DatasetBase((x, np.zeros(4, np.int32)), 2, (x, np.zeros(4, np.float32)))


def test_dataset_without_a_test_split(tmp_path):
    data = DatasetBase(_points(200, 1), 20, validate=_points(50, 3), train_order_seed=0)
    assert data.test is None and sorted(data.splits) == ["train", "validate"]
    adam = functools.partial(tf.keras.optimizers.Adam, learning_rate=0.05)
    with pytest.raises(ValueError, match="test_interval is 100 but the dataset has no test "
                                         "split; pass test_interval=None"):
        trainer.train(data, TinyNet(seed=0), adam, ("iterations", 20), str(tmp_path / "a"),
                      progress=False)
    assert not os.path.exists(tmp_path / "a")  # refused before anything was written
    result = trainer.train(data, TinyNet(seed=0), adam, ("iterations", 20),
                           str(tmp_path / "b"), test_interval=None, validate_interval=10,
                           progress=False)
    assert sorted(result.metrics) == ["train", "validate"]
    with open(tmp_path / "b" / "done.json") as f:
        assert sorted(json.load(f)["final"]) == ["train", "validate"]


def test_bias_presets_and_masks():
    dense = TinyNet(seed=0).build([2])
    assert set(dense.get_current_weights()) == {"hidden", "output"}  # unchanged default
    assert dense.bias_masks == {} and set(dense.masks) == {"hidden", "output"}
    bias_mask = np.array([1, 0, 1, 1, 0, 1, 1, 1], np.float32)
    preset = np.arange(8, dtype=np.float32)
    model = TinyNet(presets={bias_key("hidden"): preset},
                    masks={bias_key("hidden"): bias_mask}, seed=0).build([2])
    np.testing.assert_array_equal(model.biases["hidden"], preset * bias_mask)
    np.testing.assert_array_equal(model.bias_masks["hidden.bias"], bias_mask)
    np.testing.assert_array_equal(model.biases["output"], [0.0])
    weights = model.get_current_weights(include_biases=True)
    assert sorted(weights) == ["hidden", "hidden.bias", "output", "output.bias"]
    # The masked bias is 0 in the forward pass, and its gradient is 0.
    x = tf.constant([[0.3, -0.2]])
    with tf.GradientTape() as tape:
        loss = model.loss(model(x, training=True), tf.constant([1.0]))
    gradient = tape.gradient(loss, model._biases["hidden"])
    assert not gradient.numpy()[bias_mask == 0].any()
    with pytest.raises(ValueError, match=r"mask for 'hidden.bias' has shape \(3,\), but the "
                                         r"layer's bias has shape \(8,\)"):
        TinyNet(masks={"hidden.bias": np.ones(3)}).build([2])
    with pytest.raises(ValueError, match=r"presets given for layers \['hiden.bias'\]"):
        TinyNet(presets={"hiden.bias": np.ones(8)}).build([2])
    with pytest.raises(ValueError, match="mask for layer 'hidden.bias' holds values other"):
        TinyNet(masks={"hidden.bias": np.full(8, 0.5)})


def test_masked_biases_stay_zero_while_training(tmp_path):
    data = DatasetBase(_points(200, 1), 20, _points(50, 2), train_order_seed=0)
    bias_mask = np.array([1, 0, 1, 1, 0, 1, 1, 1], np.float32)
    model = TinyNet(masks={"hidden.bias": bias_mask}, seed=0)
    adam = functools.partial(tf.keras.optimizers.Adam, learning_rate=0.05)
    trainer.train(data, model, adam, ("iterations", 30), str(tmp_path), progress=False)
    assert not model.biases["hidden"][bias_mask == 0].any()
    assert model.biases["hidden"][bias_mask == 1].all()


def test_unit_bias_masks_follow_kernel_columns_and_filters():
    dense_mask = np.ones((3, 4), np.float32)
    dense_mask[:, 2] = 0
    conv_mask = np.ones((3, 3, 2, 5), np.float32)
    conv_mask[..., [0, 4]] = 0
    conv_mask[0, 0, 0, 1] = 0  # one pruned weight does not remove the filter
    masks = unit_bias_masks({"layer0": dense_mask, "conv0": conv_mask,
                             "layer0.bias": np.ones(4)})
    assert sorted(masks) == ["conv0.bias", "layer0.bias"]
    np.testing.assert_array_equal(masks["layer0.bias"], [1, 1, 0, 1])
    np.testing.assert_array_equal(masks["conv0.bias"], [0, 1, 1, 1, 0])


def test_fc_models_are_unchanged_without_bias_keys():
    model = ModelFc({"layers": [(4, "relu"), (2, None)]}, seed=0).build([3])
    assert sorted(model.variables, key=lambda v: v.name) == sorted(
        model.trainable_variables, key=lambda v: v.name)
    assert sorted(model.get_current_weights()) == ["layer0", "layer1"]


def test_outputs_that_do_not_fit_the_loss_are_refused_before_anything_is_written(tmp_path):
    class TwoLogits(ModelBase):
        loss = staticmethod(sigmoid_cross_entropy)
        accuracy = staticmethod(sigmoid_accuracy)

        def forward(self, inputs, training=False):
            return self.dense_layer("out", inputs, 2)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    data = DatasetBase((x, (x[:, 0] > 0).astype(np.float32)), 10, train_order_seed=0)
    with pytest.raises(ValueError, match=r"outputs \(shape \(2, 2\)\) and the labels \(shape "
                                         r"\(2,\), float32\) do not fit its loss"):
        trainer.train(data, TwoLogits(seed=0), functools.partial(tf.keras.optimizers.SGD, 0.1),
                      ("iterations", 5), str(tmp_path / "run"), test_interval=None,
                      progress=False)
    assert not (tmp_path / "run").exists()
