"""Zhou et al.'s mask criteria as pruning scores, and supermask evaluation."""

import json
import os

import numpy as np
import pytest

from conftest import SMALL_FC, register_synthetic_dataset
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, pruning, save_restore
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.foundations.pruning import criteria

register_synthetic_dataset()
SMALL_FLAGS = ["--dataset=synthetic_test", "--mnist_location=unused", "--validation_size=0",
               "--layers=[(32, 'relu'), (16, 'relu'), (10, None)]",
               "--training_len=iterations:20", "--batch_size=20", "--test_interval=10"]
PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}


def _weights(seed=0):
    model = ModelFc(SMALL_FC, seed=seed).build((784,))
    initial = {name: np.asarray(w, np.float32) for name, w in
               model.get_current_weights(include_biases=False).items()}
    rng = np.random.default_rng(seed)
    final = {name: (w + rng.normal(size=w.shape) * 0.05).astype(np.float32)
             for name, w in initial.items()}
    return model.masks, initial, final


BY_HAND = {
    "large_final": lambda i, f: np.abs(f),
    "small_final": lambda i, f: -np.abs(f),
    "large_init": lambda i, f: np.abs(i),
    "magnitude_increase": lambda i, f: np.abs(f) - np.abs(i),
    "movement": lambda i, f: np.abs(f - i),
    "large_init_large_final": lambda i, f: np.minimum(np.std(i) / np.std(f) * np.abs(f),
                                                      np.abs(i)),
}


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_each_criterion_removes_its_lowest_scores(name):
    masks, initial, final = _weights()
    context = pruning.Context(masks, final, initial=initial)
    rule = pruning.PruningRule(PERCENTS, scores=name)
    pruned = rule(masks, final, context=context)
    for layer, percent in PERCENTS.items():
        score = BY_HAND[name](initial[layer].astype(np.float64),
                              final[layer].astype(np.float64))
        kept, gone = score[pruned[layer] == 1], score[pruned[layer] == 0]
        assert gone.size == pruning.count_to_prune(percent, masks[layer].size)
        assert gone.max() <= kept.min()
    assert pruning.PruningRule.from_config(
        json.loads(json.dumps(rule.get_config()))).get_config() == rule.get_config()


def test_large_final_is_magnitude_and_criteria_differ():
    masks, initial, final = _weights(1)
    context = pruning.Context(masks, final, initial=initial)
    made = {name: pruning.PruningRule(PERCENTS, scores=name)(masks, final, context=context)
            for name in criteria.FORMULAS}
    magnitude = pruning.prune(PERCENTS, masks, final)
    assert all(np.array_equal(made["large_final"][k], magnitude[k]) for k in masks)
    assert len({made[name]["layer0"].tobytes() for name in made}) == len(made)


def test_a_criterion_without_initial_weights_is_refused():
    masks, _, final = _weights()
    with pytest.raises(ValueError, match="initial"):
        pruning.PruningRule(PERCENTS, scores="movement")(
            masks, final, context=pruning.Context(masks, final))
    with pytest.raises(ValueError, match="not one of"):
        criteria.Criterion("largest")


def test_movement_from_the_command_line(tmp_path, capsys):
    from lottery_ticket.mnist_fc.runners import lottery_experiment as runner
    trial = tmp_path / "trial1"
    try:
        runner.main([f"--output_dir={trial}", "--seed=1", "--levels=1",
                     "--prune_scores=movement", *SMALL_FLAGS])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    level0, level1 = paths.run(str(trial), 0), paths.run(str(trial), 1)
    masks0 = save_restore.restore_network(paths.masks(level0))
    initial0 = save_restore.kernels_only(save_restore.restore_network(paths.initial(level0)))
    final0 = save_restore.kernels_only(save_restore.restore_network(paths.final(level0)))
    masks1 = save_restore.restore_network(paths.masks(level1))
    expected = pruning.prune(PERCENTS, masks0, final0, scores="movement",
                             context=pruning.Context(masks0, final0, initial=initial0))
    for name in PERCENTS:
        np.testing.assert_array_equal(masks1[name], expected[name])
    recorded = json.load(open(paths.done(level1)))["run_info"]
    assert recorded["pruning_rule"]["scores"] == "movement"
    assert ExperimentConfig().replace(prune_scores="movement")["prune_scores"] == "movement"
