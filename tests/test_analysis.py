"""Analysis on synthetic experiment trees with known answers, and end to end."""

import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from lottery_ticket.analysis import metrics
from lottery_ticket.analysis import reader
from lottery_ticket.analysis import report
from lottery_ticket.analysis import tables
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def curve(iterations, values):
    return list(iterations), [float(v) for v in values]


def write_run(root, trial, level, name, run_id="", kept=(80, 8), test_loss=None,
              validate_loss=None, test_accuracy=None, counts_in_done=True, complete=True):
    """A run directory as the trainer writes it, with chosen curves and mask counts."""
    run = paths.run(paths.trial(str(root), trial), level, name, run_id)
    iterations = [0, 100, 200, 300, 400]
    test_loss = test_loss or [2.0, 1.0, 0.5, 0.6, 0.7]
    test_accuracy = test_accuracy or [0.1, 0.5, 0.8, 0.85, 0.82]
    metrics_json = {"test": {"iteration": iterations, "loss": test_loss,
                             "accuracy": test_accuracy},
                    "train": {"iteration": iterations[1:], "loss": [1.0] * 4,
                              "accuracy": [0.5] * 4}}
    if validate_loss is not None:
        metrics_json["validate"] = {"iteration": iterations, "loss": validate_loss,
                                    "accuracy": [0.5] * 5}
    masks = {"layer0": np.zeros(100, np.float32), "layer1": np.zeros(10, np.float32)}
    masks["layer0"][:kept[0]] = 1
    masks["layer1"][:kept[1]] = 1
    rng = np.random.default_rng(level)
    initial = {k: rng.normal(size=m.shape).astype(np.float32) * m for k, m in masks.items()}
    save_restore.save_network(paths.masks(run), masks)
    save_restore.save_network(paths.initial(run), initial)
    save_restore.save_network(paths.final(run), initial)
    save_restore.write_json(paths.metrics(run), metrics_json)
    if complete:
        done = {"iterations": 400, "run_info": {"level": level}}
        if counts_in_done:
            done["mask_counts"] = {k: [int(m.sum()), m.size] for k, m in masks.items()}
        save_restore.write_json(paths.done(run), done)
    return run


def test_early_stopping_uses_validation_loss_then_test_loss():
    with_validation = {
        "validate": {"iteration": [0, 100, 200, 300], "loss": [3, 1, 0.4, 0.4],
                     "accuracy": [0] * 4},
        "test": {"iteration": [0, 100, 200, 300], "loss": [3, 0.1, 2, 2],
                 "accuracy": [0.1, 0.2, 0.7, 0.9]}}
    result = metrics.early_stopping(with_validation)
    assert result == {"early_stop_iteration": 200, "early_stop_split": "validate",
                      "early_stop_test_accuracy": 0.7}
    test_only = {"test": with_validation["test"]}
    assert metrics.early_stopping(test_only)["early_stop_iteration"] == 100
    # Test evaluated at other iterations: the nearest one is used.
    offset = {"validate": {"iteration": [0, 150, 300], "loss": [2, 1, 3], "accuracy": [0] * 3},
              "test": {"iteration": [0, 100, 200, 300], "loss": [1] * 4,
                       "accuracy": [0.1, 0.2, 0.3, 0.4]}}
    assert metrics.early_stopping(offset)["early_stop_test_accuracy"] in (0.2, 0.3)
    with pytest.raises(ValueError, match="no validation or test"):
        metrics.early_stopping({"train": {"iteration": [1], "loss": [1], "accuracy": [1]}})


def test_records_carry_layout_fractions_and_known_metrics(tmp_path):
    write_run(tmp_path, 1, 0, "lottery", kept=(100, 10), validate_loss=[3, 2, 1, 0.5, 0.9])
    write_run(tmp_path, 1, 2, "reinit", 3, kept=(64, 8), counts_in_done=False)
    records, problems = reader.load_experiment(str(tmp_path))
    assert problems == []
    lottery, reinit = records[0], records[1]
    assert (lottery["trial"], lottery["level"], lottery["experiment_name"],
            lottery["run_id"]) == ("1", 0, "lottery", "")
    assert (reinit["experiment_name"], reinit["run_id"], reinit["level"]) == ("reinit", "3", 2)
    assert lottery["remaining"] == 1.0
    assert reinit["remaining"] == pytest.approx(72 / 110)  # read from the masks
    assert reinit["remaining_layer0"] == 0.64 and reinit["remaining_layer1"] == 0.8
    row = metrics.run_metrics(lottery)
    assert row["early_stop_iteration"] == 300 and row["early_stop_split"] == "validate"
    assert row["early_stop_test_accuracy"] == 0.85
    assert row["final_test_accuracy"] == 0.82 and row["best_test_accuracy"] == 0.85
    long = reader.evaluations(records)
    assert len(long) == (5 + 4 + 5) + (5 + 4)
    validate_300 = [r for r in long if r["split"] == "validate" and r["iteration"] == 300]
    assert len(validate_300) == 1 and validate_300[0]["loss"] == 0.5
    assert validate_300[0]["experiment_name"] == "lottery" and validate_300[0]["trial"] == "1"


def test_summary_mean_min_max_across_trials(tmp_path):
    for trial, final in ((1, 0.80), (2, 0.86), (3, 0.83)):
        write_run(tmp_path, trial, 1, "lottery", kept=(80, 9),
                  test_accuracy=[0.1, 0.5, 0.8, 0.85, final])
    write_run(tmp_path, 1, 1, "rearrange", 1, kept=(80, 9),
              test_loss=[2, 0.1, 0.5, 0.6, 0.7])
    records, _ = reader.load_experiment(str(tmp_path))
    summary = metrics.summarize([metrics.run_metrics(r) for r in records])
    lottery = next(s for s in summary if s["experiment_name"] == "lottery")
    assert (lottery["runs"], lottery["trials"], lottery["level"]) == (3, 3, 1)
    assert lottery["final_test_accuracy_mean"] == pytest.approx(0.83)
    assert lottery["final_test_accuracy_min"] == 0.80
    assert lottery["final_test_accuracy_max"] == 0.86
    assert lottery["early_stop_iteration_mean"] == 200  # test-loss minimum
    assert lottery["remaining"] == pytest.approx(89 / 110)
    rearrange = next(s for s in summary if s["experiment_name"] == "rearrange")
    assert rearrange["early_stop_iteration_min"] == 100
    markdown = tables.summary_markdown(summary, "toy")
    assert "| lottery | 1 | 80.91 | 3 | 200 [200, 200] | 80.00 [80.00, 80.00] | " \
           "83.00 [80.00, 86.00] |" in markdown
    csv_text = tables.to_csv(summary)
    assert csv_text.splitlines()[0].startswith("experiment_name,level,runs,trials,remaining")


def test_curves_align_runs_on_shared_iterations(tmp_path):
    write_run(tmp_path, 1, 0, "lottery", test_accuracy=[0.1, 0.2, 0.3, 0.4, 0.5])
    write_run(tmp_path, 2, 0, "lottery", test_accuracy=[0.3, 0.4, 0.5, 0.6, 0.7])
    records, _ = reader.load_experiment(str(tmp_path))
    curve_ = metrics.curves(records)[("lottery", 0)]
    np.testing.assert_allclose(curve_["mean"], [0.2, 0.3, 0.4, 0.5, 0.6])
    np.testing.assert_allclose(curve_["min"], [0.1, 0.2, 0.3, 0.4, 0.5])
    assert curve_["runs"] == 2


def test_incomplete_and_malformed_runs_are_reported_by_path(tmp_path):
    good = write_run(tmp_path, 1, 0, "lottery")
    unfinished = write_run(tmp_path, 1, 1, "lottery", complete=False)
    broken = write_run(tmp_path, 2, 0, "lottery")
    with open(paths.metrics(broken), "w") as f:
        f.write("{not json")
    uneven = write_run(tmp_path, 3, 0, "lottery")
    save_restore.write_json(paths.metrics(uneven), {"test": {
        "iteration": [0, 1], "loss": [1.0], "accuracy": [0.5, 0.6]}})
    os.makedirs(tmp_path / "trial1" / "notes")
    records, problems = reader.load_experiment(str(tmp_path))
    assert [r["path"] for r in records] == [os.path.normpath(good)]
    reasons = {p.path: p.reason for p in problems}
    assert "incomplete" in reasons[unfinished]
    assert "not valid JSON" in reasons[broken]
    assert "different lengths" in reasons[uneven]
    assert "not a level directory" in reasons[str(tmp_path / "trial1" / "notes")]


def test_report_writes_valid_figures_tables_and_problems(tmp_path):
    root = tmp_path / "exp"
    for trial in (1, 2):
        for level, kept in ((0, (100, 10)), (1, (80, 9)), (2, (64, 8))):
            write_run(root, trial, level, "lottery", kept=kept,
                      validate_loss=[3, 2, 1, 0.5, 0.9])
            write_run(root, trial, level, "reinit", 1, kept=kept)
    bad = write_run(root, 2, 2, "rearrange", 1, complete=False)
    out = tmp_path / "figures"
    result = report.report(str(root), str(out), levels=[0, 2], title="toy experiment")
    for name in ("early_stop_iteration", "early_stop_accuracy", "accuracy_curves",
                 "weight_histograms"):
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
        assert matplotlib.image.imread(str(out / f"{name}.png")).shape[0] > 200
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 6  # two experiments x three levels
    assert "toy experiment" in (out / "summary.md").read_text()
    assert bad in (out / "problems.txt").read_text()
    assert len(result["problems"]) == 1
    rows = (out / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and "early_stop_iteration" in rows[0]

    svg = report.report(str(root), str(tmp_path / "svg"), image_format="svg")
    assert any(p.endswith("accuracy_curves.svg") for p in svg["written"])
    assert (tmp_path / "svg" / "accuracy_curves.svg").read_text().lstrip().startswith("<?xml")


def test_report_with_nothing_complete_is_a_clear_error(tmp_path):
    write_run(tmp_path, 1, 0, "lottery", complete=False)
    with pytest.raises(ValueError, match="(?s)no complete run.*trial1/0/lottery: incomplete"):
        report.report(str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="--format"):
        report.report(str(tmp_path), str(tmp_path / "out"), image_format="jpg")


def test_default_levels_spread_over_what_exists():
    assert report.default_levels([0, 1, 2]) == [0, 1, 2]
    assert report.default_levels(list(range(31))) == [0, 8, 15, 22, 30]


@pytest.mark.slow
def test_real_experiment_through_the_command_line(tmp_path, fashion_mnist_dir):
    """Lottery plus one control on Fashion-MNIST, then the report CLI."""
    root = tmp_path / "exp"
    common = [f"--mnist_location={fashion_mnist_dir}", "--training_len=iterations:200",
              "--test_interval=50", "--validate_interval=50", "--threads=1"]

    def run(module, *flags):
        result = subprocess.run([sys.executable, "-m", module, *flags], capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result

    run("lottery_ticket.mnist_fc.runners.lottery_experiment",
        f"--output_dir={root / 'trial1'}", "--iterations=2", "--seed=1", *common)
    argfile_flags = (f"--trials=1 --last_level=2 --runs_per_level=1 --experiment_root={root} "
                     f"--mnist_location={fashion_mnist_dir} --training_len=iterations:200 "
                     "--extra=--test_interval=50 --extra=--validate_interval=50")
    batch = run("lottery_ticket.mnist_fc.runners.argfile_runner", "--runner=rearrange",
                "--argfile=rearrange_argfile", f"--argfile_flags={argfile_flags}")
    assert "2 done, 0 skipped (already done), 0 failed, of 2 lines" in batch.stdout
    out = tmp_path / "figures"
    result = run("lottery_ticket.analysis.report", f"--experiment_path={root}",
                 f"--output_dir={out}", "--levels=0,2")
    assert "5 complete runs analysed; 0 problem(s)." in result.stdout
    for name in ("early_stop_iteration", "early_stop_accuracy", "accuracy_curves",
                 "weight_histograms"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    summary = (out / "summary.md").read_text()
    assert "| lottery | 2 | 64.06 |" in summary and "| rearrange | 2 | 64.06 |" in summary
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[1].startswith("lottery,0,1,1,1.0,")


def test_original_codebase_same_init_runs_read_as_lottery_runs(tmp_path):
    write_run(tmp_path, 1, 0, "same_init", kept=(100, 10))
    write_run(tmp_path, 1, 1, "same_init", kept=(80, 9))
    write_run(tmp_path, 2, 1, "lottery", kept=(80, 9))
    records, problems = reader.load_experiment(str(tmp_path))
    assert problems == []
    assert [(r["experiment_name"], r["level"], r["trial"]) for r in records] == [
        ("lottery", 0, "1"), ("lottery", 1, "1"), ("lottery", 1, "2")]
    summary = metrics.summarize([metrics.run_metrics(r) for r in records])
    level1 = next(s for s in summary if s["level"] == 1)
    assert (level1["experiment_name"], level1["runs"]) == ("lottery", 2)
