"""Zhou et al.'s mask criteria as pruning scores, and supermask evaluation."""

import json
import os

import numpy as np
import pytest

from conftest import SMALL_FC, register_synthetic_dataset
from lottery_ticket.experiments import supermask
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


@pytest.fixture(scope="module")
def movement_trial(tmp_path_factory):
    """A one-level trial pruned by movement, made from the command line."""
    from lottery_ticket.mnist_fc.runners import lottery_experiment as runner
    trial = tmp_path_factory.mktemp("criteria") / "trial1"
    try:
        runner.main([f"--output_dir={trial}", "--seed=1", "--levels=1",
                     "--prune_scores=movement", *SMALL_FLAGS])
    except SystemExit as exit_:
        assert not exit_.code
    return str(trial)


def test_movement_from_the_command_line(movement_trial):
    trial = movement_trial
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


def test_supermask_weights_keep_signs_and_a_constant_per_layer():
    masks, initial, _ = _weights(2)
    masks = pruning.prune(PERCENTS, masks, initial)
    initial["layer0.bias"] = np.full(32, 0.5, np.float32)
    plain = supermask.supermask_weights(masks, initial)
    signed = supermask.supermask_weights(masks, initial, signed_constant=True)
    for name in PERCENTS:
        np.testing.assert_array_equal(plain[name], initial[name] * masks[name])
        constant = np.float32(np.std(initial[name].astype(np.float64)))
        assert set(np.unique(np.abs(signed[name][masks[name] == 1]))) == {constant}
        assert np.array_equal(np.sign(signed[name]), np.sign(initial[name]) * masks[name])
    assert np.array_equal(signed["layer0.bias"], initial["layer0.bias"])
    with pytest.raises(ValueError, match="do not match its mask"):
        supermask.supermask_weights({"layer0": np.ones((3, 3))}, initial)


def test_supermask_of_a_trial_from_the_command_line_and_the_report(movement_trial, tmp_path,
                                                                   capsys):
    from lottery_ticket.analysis import report, science
    from lottery_ticket.mnist_fc.runners import supermask as runner
    trial = movement_trial
    try:
        runner.main([f"--trial_dir={trial}"])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    out = capsys.readouterr().out
    record = json.load(open(os.path.join(trial, supermask.RECORD)))
    assert record["criterion"] == "movement" and [e["level"] for e in record["levels"]] == [0, 1]
    # Level 0's dense network at its initial weights is what its run evaluated first.
    metrics0 = json.load(open(paths.metrics(paths.run(trial, 0))))
    assert metrics0["test"]["iteration"][0] == 0
    assert record["levels"][0]["init"]["accuracy"] == pytest.approx(
        metrics0["test"]["accuracy"][0], abs=1e-6)
    masks1 = save_restore.restore_network(paths.masks(paths.run(trial, 1)))
    kept = sum(int(m.sum()) for m in masks1.values()) / sum(m.size for m in masks1.values())
    assert record["levels"][1]["remaining"] == pytest.approx(kept)
    assert f"level 1 ({100 * kept:.2f}% remain)" in out
    # Rerunning reads it back; other settings are refused.
    stamp = os.path.getmtime(os.path.join(trial, supermask.RECORD))
    assert supermask.evaluate_trial(trial) == record
    assert os.path.getmtime(os.path.join(trial, supermask.RECORD)) == stamp
    try:  # as an argfile batch line names it
        runner.main([f"--output_dir={os.path.join(trial, 'supermask')}"])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    assert f"level 1 ({100 * kept:.2f}% remain)" in capsys.readouterr().out
    assert os.path.getmtime(os.path.join(trial, supermask.RECORD)) == stamp
    with pytest.raises(ValueError, match="split: 'test' -> 'train'"):
        supermask.evaluate_trial(trial, split="train")
    rows = science.read_supermasks(os.path.dirname(trial))
    assert [(r["criterion"], r["level"]) for r in rows] == [("movement", 0), ("movement", 1)]
    result = report.report(os.path.dirname(trial), str(tmp_path / "figures"))
    assert os.path.isfile(tmp_path / "figures" / "supermask.png")
    assert "movement" in open(tmp_path / "figures" / "supermask.csv").read()
    assert not [p for p in result["problems"] if "supermask" in str(p)]
