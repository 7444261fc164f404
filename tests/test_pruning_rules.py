"""Pruning rules as objects: settings, the context, gradients, a score that reads them."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, register_synthetic_dataset, synthetic_dataset
from lottery_ticket.experiments import build
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import experiment, pruning
from lottery_ticket.foundations.model_fc import ModelFc

register_synthetic_dataset()
SMALL_FLAGS = ["--dataset=synthetic_test", "--mnist_location=unused", "--validation_size=0",
               "--layers=[(32, 'relu'), (16, 'relu'), (10, None)]",
               "--training_len=iterations:20", "--batch_size=20", "--test_interval=10"]
PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}


def _trained(seed=0):
    model = ModelFc(SMALL_FC, seed=seed).build((784,))
    rng = np.random.default_rng(seed)
    final = {name: np.round(w + rng.normal(size=w.shape) * 0.05, 2).astype(np.float32)
             for name, w in model.get_current_weights().items()}
    return model.masks, final


@pytest.mark.parametrize("kwargs", [
    {}, {"selection": "global", "groups": [["layer0", "layer1"], ["layer2"]]},
    {"selection": "unit", "prune_next": False}, {"scores": "random", "seed": 4},
    {"selection": "unit", "scores": "magnitude_product", "order": ["layer0", "layer1",
                                                                   "layer2"]},
    {"oneshot": True}, {"scores": "snip", "score_config": {"batches": 3}},
])
def test_get_config_round_trips_through_json(kwargs):
    percents = {"layer0": 0.5, "layer1": 0.25} if kwargs.get("selection") == "unit" \
        else PERCENTS
    rule = pruning.PruningRule(percents, **kwargs)
    config = json.loads(json.dumps(rule.get_config()))
    again = pruning.PruningRule.from_config(config)
    assert again.get_config() == rule.get_config()
    if "snip" not in str(kwargs):
        masks, final = _trained()
        level = {"level": 3} if kwargs.get("oneshot") else {}
        first, second = rule(masks, final, **level), again(masks, final, **level)
        assert all(np.array_equal(first[name], second[name]) for name in masks)
    default = "input_magnitude" if kwargs.get("selection") == "unit" else "magnitude"
    assert config["scores"] == kwargs.get("scores", default)
    assert config["selection"] == kwargs.get("selection", "layerwise")


def test_a_rule_is_prune_with_the_same_settings():
    masks, final = _trained()
    rule = pruning.PruningRule(PERCENTS, selection="global", scores="random", seed=2)
    expected = pruning.prune(PERCENTS, masks, final, selection="global", scores="random",
                             seed=2)
    assert all(np.array_equal(rule(masks, final)[name], expected[name]) for name in masks)
    assert pruning.accepts_context(rule) and experiment.accepts_level(rule)


def test_magnitude_rules_never_ask_for_the_model_or_the_data():
    def refuse(*args):
        raise AssertionError("a magnitude rule built a model or read data")

    masks, final = _trained()
    context = pruning.Context(masks, final, model_fn=refuse, dataset_fn=refuse)
    for selection in ("layerwise", "global"):
        pruned = pruning.prune(PERCENTS, masks, final, selection=selection, context=context)
        assert int(sum(m.sum() for m in pruned.values())) < int(
            sum(m.sum() for m in masks.values()))


def test_per_weight_quantity_is_the_gradient_and_zero_where_pruned():
    data = synthetic_dataset()
    masks, final = _trained()
    masks = pruning.prune(PERCENTS, masks, final)
    model = ModelFc(SMALL_FC, presets=final, masks=masks, seed=0)
    batches = [(data.train[0][rows], data.train[1][rows]) for rows in data.batch_indices(0, 2)]
    gradients = pruning.per_weight_quantity(model, batches)
    expected = {}
    for x, y in batches:
        with tf.GradientTape() as tape:
            loss = model.loss(model.forward(tf.constant(x), training=False), tf.constant(y))
        kernels = model.kernel_variables
        for name, grad in zip(kernels, tape.gradient(loss, list(kernels.values()))):
            expected[name] = expected.get(name, 0) + grad.numpy().astype(np.float64) / 2
    for name in masks:
        np.testing.assert_allclose(gradients[name], expected[name], rtol=1e-6, atol=1e-12)
        assert gradients[name].dtype == np.float64
        assert (gradients[name][masks[name] == 0] == 0).all()
        assert np.abs(gradients[name]).max() > 0
    squared = pruning.per_weight_quantity(
        model, batches, lambda w, g: {name: tf.square(g[name]) for name in g})
    assert all((squared[name] >= 0).all() for name in masks)
    with pytest.raises(ValueError, match="at least one batch"):
        pruning.per_weight_quantity(model, [])


def _snip_by_hand(percents, masks, final, data, batches=1):
    """|w * dL/dw| of a model holding `final`, mean gradient over the first batches."""
    model = ModelFc(SMALL_FC, presets=final, masks=masks, seed=0).build((784,))
    total = {}
    for rows in data.batch_indices(0, batches):
        with tf.GradientTape() as tape:
            loss = model.loss(model.forward(tf.constant(data.train[0][rows])),
                              tf.constant(data.train[1][rows]))
        kernels = model.kernel_variables
        for name, grad in zip(kernels, tape.gradient(loss, list(kernels.values()))):
            total[name] = total.get(name, 0) + grad.numpy().astype(np.float64)
    scores = {name: np.abs(np.asarray(final[name], np.float64) * total[name] / batches)
              for name in masks}
    return pruning.select_layerwise(percents, masks, scores)


def test_snip_reads_the_model_and_data_the_context_provides():
    data = synthetic_dataset()
    masks, final = _trained()
    context = pruning.Context(masks, final, model_fn=lambda w, m: ModelFc(
        SMALL_FC, presets=w, masks=m, seed=0), dataset_fn=lambda: data)
    pruned = pruning.prune(PERCENTS, masks, final, scores="snip", context=context)
    expected = _snip_by_hand(PERCENTS, masks, final, data)
    by_magnitude = pruning.prune(PERCENTS, masks, final)
    for name in masks:
        np.testing.assert_array_equal(pruned[name], expected[name])
        assert pruned[name].sum() == by_magnitude[name].sum()  # the same counts
    assert any(not np.array_equal(pruned[name], by_magnitude[name]) for name in masks)
    with pytest.raises(ValueError, match=r"needs the model and the training data.*"
                                         r"context=pruning.Context\(masks, final, "
                                         r"model_fn=\.\.\., dataset_fn=\.\.\.\)"):
        pruning.prune(PERCENTS, masks, final, scores="snip")


def test_a_new_score_is_one_class_and_one_register_line(tmp_path):
    class Smallest(pruning.LayerScore):
        """-|w|: prunes the largest weights first (a test of the plumbing only)."""

        def layer(self, name, weights, mask, seed):
            return -np.abs(weights)

    pruning.WEIGHT_SCORES.register("largest_first", Smallest, replace=True)
    try:
        config = ExperimentConfig().replace(prune_scores="largest_first")
        masks, final = _trained()
        pruned = build.prune_fn(config)(masks, final)
        for name, percent in PERCENTS.items():
            kept = np.abs(final[name])[pruned[name] == 1]
            gone = np.abs(final[name])[(pruned[name] == 0) & (masks[name] == 1)]
            assert gone.size == pruning.count_to_prune(percent, masks[name].size)
            assert gone.min() >= kept.max()
        assert build.prune_fn(config).get_config()["scores"] == "largest_first"
    finally:  # later tests list the registered scores
        pruning.WEIGHT_SCORES.unregister("largest_first")
    assert "largest_first" not in pruning.WEIGHT_SCORES


def _run_cli(argv, capsys):
    from lottery_ticket.mnist_fc.runners import lottery_experiment as runner
    capsys.readouterr()
    try:
        runner.main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    return (code,) + capsys.readouterr()


def test_snip_from_the_command_line(tmp_path, capsys):
    trial = tmp_path / "trial1"
    code, _, err = _run_cli([f"--output_dir={trial}", "--seed=1", "--levels=1",
                             "--prune_scores=snip", *SMALL_FLAGS], capsys)
    assert code == 0, err
    from lottery_ticket.foundations import paths, save_restore
    level0, level1 = paths.run(str(trial), 0), paths.run(str(trial), 1)
    masks0 = save_restore.restore_network(paths.masks(level0))
    final0 = save_restore.restore_network(paths.final(level0))
    masks1 = save_restore.restore_network(paths.masks(level1))
    expected = _snip_by_hand(PERCENTS, masks0, final0, synthetic_dataset(train_order_seed=1))
    for name in PERCENTS:
        np.testing.assert_array_equal(masks1[name], expected[name])
    # Each run records its rule's settings.
    config = ExperimentConfig().replace(prune_scores="snip")
    for run in (level0, level1):
        recorded = json.load(open(paths.done(run)))["run_info"]["pruning_rule"]
        assert recorded == build.prune_fn(config, 1).get_config()
        assert recorded["scores"] == "snip" and recorded["score_config"] == {
            "batches": 1, "weights": "final"}
        assert pruning.PruningRule.from_config(recorded).get_config() == recorded
    # Runs made before the rule was recorded resume as they are (the configuration
    # decides the rule), and resuming gives the same masks, bit for bit.
    for run in (level0, level1):
        done = json.load(open(paths.done(run)))
        del done["run_info"]["pruning_rule"]
        with open(paths.done(run), "w") as f:
            json.dump(done, f)
    stamp = os.path.getmtime(os.path.join(paths.final(level1), "layer0.npy"))
    code, _, err = _run_cli([f"--output_dir={trial}", "--seed=1", "--levels=1",
                             "--prune_scores=snip", *SMALL_FLAGS], capsys)
    assert code == 0, err
    assert os.path.getmtime(os.path.join(paths.final(level1), "layer0.npy")) == stamp


def test_the_docs_pruning_examples_run(fashion_mnist_dir):
    from conftest import REPO
    blocks = []
    for page in (("concepts", "pruning.md"), ("howto", "pruning-rule.md")):
        text = open(os.path.join(REPO, "docs", *page), encoding="utf-8").read()
        blocks += re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2 and "WEIGHT_SCORES.register" in blocks[1]
    namespace = {}
    for block in blocks:
        exec(compile(block.replace('"data/mnist"', repr(fashion_mnist_dir)), "docs",
                     "exec"), namespace)
    sensitive, trained = namespace["sensitive"], namespace["trained"]
    by_magnitude = pruning.prune(namespace["lenet_percents"], namespace["dense_masks"],
                                 trained)
    assert not np.array_equal(sensitive["layer0"], by_magnitude["layer0"])


def test_oneshot_runs_record_their_one_shot_rule(tmp_path):
    from lottery_ticket.experiments import oneshot
    from lottery_ticket.foundations import paths, runs
    config = ExperimentConfig().replace(
        dataset="synthetic_test", data_location="unused", validation_size=0,
        layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 20),
        batch_size=20, test_interval=10, levels=2)
    oneshot.run_oneshot(str(tmp_path), config, levels=[2], seed=0, progress=False)
    recorded = runs.read_done(paths.run(str(tmp_path), 2, "oneshot"))["run_info"]
    assert recorded["pruning_rule"]["oneshot"] is True
    assert recorded["pruning_rule"] == oneshot.pruning_function(config, 0).get_config()
    level0 = runs.read_done(paths.run(str(tmp_path), 0))["run_info"]["pruning_rule"]
    assert level0["oneshot"] is False and level0["percents"] == PERCENTS


def test_population_trials_hand_snip_its_context(tmp_path):
    from lottery_ticket.experiments import population as population_trials
    from lottery_ticket.foundations import paths, save_restore
    config = ExperimentConfig().replace(
        dataset="synthetic_test", data_location="unused", validation_size=0,
        layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 20),
        batch_size=20, test_interval=10, levels=1, prune_scores="snip")
    results = population_trials.run_trials(str(tmp_path), config, [2, 5], progress=False)
    for seed, trial in zip([2, 5], results):
        level0 = paths.run(paths.trial(str(tmp_path), seed), 0)
        expected = _snip_by_hand(PERCENTS, trial[0].masks,
                                 save_restore.restore_network(paths.final(level0)),
                                 synthetic_dataset(train_order_seed=seed))
        for name in PERCENTS:
            np.testing.assert_array_equal(trial[1].masks[name], expected[name])
