"""Pruning at initialization as an experiment kind: masks, ablations, resume, refusal,
the command line and argfiles."""

import json
import os
import re

import numpy as np
import pytest

from conftest import register_synthetic_dataset
from lottery_ticket.experiments import build, kinds
from lottery_ticket.experiments import prune_at_init as pai
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, pruning, save_restore

DATA = register_synthetic_dataset()
CONFIG = ExperimentConfig().replace(
    dataset=DATA, data_location="unused", validation_size=0,
    layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 10),
    batch_size=20, test_interval=5, levels=2, synflow_rounds=5)
SMALL_FLAGS = ["--dataset=synthetic_test", "--mnist_location=unused", "--validation_size=0",
               "--layers=[(32, 'relu'), (16, 'relu'), (10, None)]",
               "--training_len=iterations:10", "--batch_size=20", "--test_interval=5"]


def _initial(config, seed):
    model = build.model(config, None, None, seed=seed)
    model.build((784,))
    return model.get_current_weights()


def _counts(masks):
    return {name: int(np.count_nonzero(m)) for name, m in masks.items()}


def _lottery_counts(config, level):
    sizes = {name: w.size for name, w in _initial(config, 0).items()}
    return {name: pruning.survivors_after(config["prune_percents"][name], size, level)
            for name, size in sizes.items()}


@pytest.mark.parametrize("scores", ["snip", "synflow", "magnitude_at_init", "random"])
def test_each_level_prunes_the_initialization_to_the_lottery_count_and_trains(tmp_path,
                                                                              scores):
    config = CONFIG.replace(prune_scores=scores)
    results = pai.run_prune_at_init(str(tmp_path), config, [1, 2], seed=3, progress=False)
    initial = _initial(config, 3)
    for level in (1, 2):
        run = paths.run(str(tmp_path), level, f"prune_at_init_{scores}")
        assert json.load(open(paths.done(run)))["run_info"]["ablation"] == "none"
        masks = save_restore.restore_network(paths.masks(run))
        assert _counts(masks) == _lottery_counts(config, level)
        # Trained from the trial's own initialization, under the mask.
        start = save_restore.restore_network(paths.initial(run))
        for name in masks:
            np.testing.assert_array_equal(start[name], initial[name] * masks[name])
            final = save_restore.restore_network(paths.final(run))[name]
            assert np.all(final[masks[name] == 0] == 0)
        assert not results[level].resumed and results[level].metrics
    if scores == "magnitude_at_init":
        masks = results[2].masks
        for name in masks:
            kept, gone = np.abs(initial[name])[masks[name] == 1], np.abs(
                initial[name])[masks[name] == 0]
            assert gone.max() <= kept.min()


def test_a_finished_run_is_read_back_and_other_settings_are_refused(tmp_path):
    config = CONFIG.replace(prune_scores="synflow")
    first = pai.run_prune_at_init(str(tmp_path), config, [2], seed=1, progress=False)
    run = paths.run(str(tmp_path), 2, "prune_at_init_synflow")
    stamp = os.path.getmtime(os.path.join(paths.final(run), "layer0.npy"))
    again = pai.run_prune_at_init(str(tmp_path), config, [2], seed=1, progress=False)
    assert again[2].resumed
    assert os.path.getmtime(os.path.join(paths.final(run), "layer0.npy")) == stamp
    for name in first[2].masks:
        np.testing.assert_array_equal(first[2].masks[name], again[2].masks[name])
    with pytest.raises(ValueError, match="synflow_rounds"):
        pai.run_prune_at_init(str(tmp_path), config.replace(synflow_rounds=7), [2], seed=1,
                              progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        pai.run_prune_at_init(str(tmp_path), config.replace(learning_rate=0.05), [2], seed=1,
                              progress=False)


def test_the_ablations_of_frankle_et_al_2021(tmp_path):
    config = CONFIG.replace(prune_scores="magnitude_at_init")
    initial = _initial(config, 2)
    plain = pai.run_prune_at_init(str(tmp_path), config, [2], seed=2, progress=False)[2]
    runs = {ablation: paths.run(str(tmp_path), 2, f"prune_at_init_magnitude_at_init_"
                                                  f"{ablation}") for ablation in pai.ABLATIONS}
    for ablation in pai.ABLATIONS:
        pai.run_prune_at_init(str(tmp_path), config, [2], seed=2, ablation=ablation,
                              progress=False)
    shuffled = save_restore.restore_network(paths.masks(runs["shuffle"]))
    reinit_masks = save_restore.restore_network(paths.masks(runs["reinit"]))
    inverted = save_restore.restore_network(paths.masks(runs["invert"]))
    for name, mask in plain.masks.items():
        # shuffle: the same count per layer at other positions, the original init there.
        assert _counts({name: shuffled[name]}) == _counts({name: mask})
        assert not np.array_equal(shuffled[name], mask)
        start = save_restore.restore_network(paths.initial(runs["shuffle"]))[name]
        np.testing.assert_array_equal(start, initial[name] * shuffled[name])
        # reinit: the same mask, survivors drawn afresh.
        np.testing.assert_array_equal(reinit_masks[name], mask)
        start = save_restore.restore_network(paths.initial(runs["reinit"]))[name]
        assert not np.allclose(start[mask == 1], initial[name][mask == 1])
        # invert: the same count, the largest initial weights removed.
        assert _counts({name: inverted[name]}) == _counts({name: mask})
        gone, kept = np.abs(initial[name])[inverted[name] == 0], np.abs(
            initial[name])[inverted[name] == 1]
        assert gone.min() >= kept.max()
    with pytest.raises(ValueError, match="unknown ablation 'shufle'.*shuffle, reinit, invert"):
        pai.run_prune_at_init(str(tmp_path), config, [2], ablation="shufle")
    with pytest.raises(ValueError, match="--rewind_iteration=0"):
        pai.run_prune_at_init(str(tmp_path), config.replace(rewind_iteration=2), [2])
    with pytest.raises(ValueError, match="layerwise or global"):
        pai.run_prune_at_init(str(tmp_path), config.replace(
            pruning="unit", prune_percents={"layer0": 0.2}), [2])


def test_the_command_line_and_the_argfile(tmp_path, capsys):
    from lottery_ticket.mnist_fc.argfiles import prune_at_init_argfile
    from lottery_ticket.mnist_fc.runners import prune_at_init as runner
    prune_at_init_argfile.main(["--trials=1", "--levels_at=2", f"--experiment_root={tmp_path}",
                                "--mnist_location=unused", "--scores=grasp",
                                "--ablations=none,shuffle", "--training_len=iterations:10"])
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == 2 and lines[1].endswith("--ablation=shuffle")
    assert f"--output_dir={tmp_path}/trial1/2/prune_at_init_grasp " in lines[0] + " "
    args = lines[1].split() + SMALL_FLAGS[2:] + ["--dataset=synthetic_test"]
    args = [a for a in args if not a.startswith("--training_len")] + [
        "--training_len=iterations:10"]
    runner.main(args)
    out = capsys.readouterr().out
    run = paths.run(str(tmp_path / "trial1"), 2, "prune_at_init_grasp_shuffle")
    assert f"run directory: {run}" in out and os.path.exists(paths.done(run))
    recorded = json.load(open(paths.done(run)))["run_info"]
    assert recorded["ablation"] == "shuffle" and recorded["config"]["pruning"][
        "prune_scores"] == "grasp"
    assert _counts(save_restore.restore_network(paths.masks(run))) == _lottery_counts(
        CONFIG, 2)
    # The directory must say the score and ablation the flags give.
    with pytest.raises(SystemExit):
        runner.main([f"--output_dir={tmp_path}/trial1/2/prune_at_init_snip", "--seed=1",
                     "--prune_scores=grasp", *SMALL_FLAGS])
    assert re.search(r"not a --prune_scores=grasp --ablation=none run directory: it must "
                     r"be \{trial\}/\{level\}/prune_at_init_grasp", capsys.readouterr().err)
    assert "lottery_ticket.mnist_fc.runners.prune_at_init" in constants_modules()


def constants_modules():
    from lottery_ticket.mnist_fc import constants
    return constants.FAMILY.runner_modules() + constants.FAMILY.argfile_modules()


def test_the_kind_is_registered_with_its_run_names():
    kind = kinds.get("prune_at_init")
    assert set(pai.run_names()) <= set(kind.run_names)
    assert kinds.of_run("prune_at_init_snip_invert") is kind
    assert kinds.label("prune_at_init_synflow_shuffle") == "synflow at init, shuffled"


def test_the_report_draws_prune_at_init_beside_the_lottery_tickets(tmp_path):
    from lottery_ticket.analysis import figures, metrics, reader, report
    from lottery_ticket.experiments import lottery
    root = tmp_path / "exp"
    for trial in (1, 2):
        trial_dir = str(root / f"trial{trial}")
        lottery.run_trial(trial_dir, CONFIG, seed=trial, progress=False)
        for scores, ablation in (("snip", None), ("snip", "shuffle"), ("random", None)):
            pai.run_prune_at_init(trial_dir, CONFIG.replace(prune_scores=scores), [1, 2],
                                  seed=trial, ablation=ablation, progress=False)
    records, problems = reader.load_experiment(str(root))
    assert not [p for p in problems if p.kind != reader.NOTE]
    at_init = [r for r in records if r["experiment_name"] == "prune_at_init_snip_shuffle"]
    assert sorted((r["level"], r["trial"]) for r in at_init) == [(1, '1'), (1, '2'), (2, '1'), (2, '2')]
    lottery_remaining = {r["level"]: r["remaining"] for r in records
                         if r["experiment_name"] == "lottery"}
    assert all(r["remaining"] == lottery_remaining[r["level"]] for r in at_init)
    out = tmp_path / "figs"
    result = report.report(str(root), str(out))
    assert str(out / "prune_at_init.png") in result["written"]
    summary = metrics.summarize([metrics.run_metrics(r) for r in metrics.label_series(records)])
    figure = figures.prune_at_init_figure(summary)
    labels = [label.split(" (")[0] for label in
              figure.axes[0].get_legend_handles_labels()[1]]
    assert labels == ["lottery", "snip at init", "snip at init, shuffled", "random at init"]
    rows = [r for r in summary if r["experiment_name"] == "prune_at_init_snip"]
    assert all(r["runs"] == 2 for r in rows)
    with pytest.raises(ValueError, match="no prune_at_init runs"):
        figures.prune_at_init_figure([r for r in summary if r["experiment_name"] == "lottery"])


def test_series_of_a_kind_take_its_place_among_the_lines():
    from lottery_ticket.analysis import figures
    names = ["prune_at_init_snip", "aardvark", "lottery (rewind_iteration=100)",
             "lottery (rewind_iteration=0)", "random_prune"]
    assert figures.prune_at_init_series(names) == [
        "lottery (rewind_iteration=0)", "lottery (rewind_iteration=100)", "random_prune",
        "prune_at_init_snip"]
    assert figures.prune_at_init_series(["lottery", "oneshot"]) == []
    assert kinds.label("prune_at_init_magnitude_at_init_invert") == "magnitude_at_init, inverted"
