"""The report on damaged trees: each damaged or diverged run is listed with its
path and reason, left out of every table and figure, and never touched; the
rest is analysed. Synthetic trees only (no training), so these are fast."""

import csv
import io
import math
import os
import re

import numpy as np
import pytest

from lottery_ticket.analysis import figures
from lottery_ticket.analysis import metrics
from lottery_ticket.analysis import reader
from lottery_ticket.analysis import report
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from conftest import checksums
from test_analysis import write_run

LEVELS = ((0, (100, 10)), (1, (80, 9)), (2, (64, 8)))
RUNS = 2 * len(LEVELS) * 2  # trials x levels x (lottery, reinit1)


def _tree(root):
    """Two trials, three levels, a lottery run and a reinit control at each."""
    for trial in (1, 2):
        for level, kept in LEVELS:
            write_run(root, trial, level, "lottery", kept=kept,
                      validate_loss=[3, 2, 1, 0.5, 0.9])
            write_run(root, trial, level, "reinit", 1, kept=kept)
    return root


def _csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


# --- damage kinds: each changes one run's files and says what the reason must name.

def _edit_metrics(run, change):
    values = save_restore.read_json(paths.metrics(run))
    change(values)
    save_restore.write_json(paths.metrics(run), values)


def _edit_done(run, change):
    values = save_restore.read_json(paths.done(run))
    change(values)
    save_restore.write_json(paths.done(run), values)


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def empty_metrics(run):
    save_restore.write_json(paths.metrics(run), {})
    return r"metrics\.json is empty"


def non_numeric_metrics(run):
    save_restore.write_json(paths.metrics(run), {"test": {
        "iteration": [0, 100], "loss": ["a", "b"], "accuracy": [0.1, 0.2]}})
    return r"metrics\.json.*loss holds non-numeric values \(e\.g\. 'a'\)"


def non_numeric_accuracy(run):
    _edit_metrics(run, lambda m: m["test"].update(accuracy=[0.1, "x", 0.3, 0.4, 0.5]))
    return r"metrics\.json.*accuracy holds non-numeric values"


def metrics_not_a_list(run):
    _edit_metrics(run, lambda m: m["test"].update(loss=5))
    return r"metrics\.json.*loss is a JSON number, not a list"


def truncated_initial(run):
    _truncate(os.path.join(paths.initial(run), "layer0.npy"))
    return r"initial/layer0\.npy is unreadable, truncated"


def truncated_masks(run):
    _truncate(os.path.join(paths.masks(run), "layer1.npy"))
    return r"masks/layer1\.npy is unreadable, truncated"


def all_losses_nan(run):
    _edit_metrics(run, lambda m: [split.update(loss=[float("nan")] * len(split["loss"]))
                                  for split in m.values()])
    return r"every (validate|test) loss is NaN or infinite"


def done_is_a_list(run):
    save_restore.write_json(paths.done(run), [1, 2, 3])
    return r"done\.json is malformed: it holds a JSON list"


def done_not_json(run):
    with open(paths.done(run), "w") as f:
        f.write("{truncated")
    return r"done\.json is not valid JSON"


def run_info_not_an_object(run):
    _edit_done(run, lambda d: d.update(run_info="level 1"))
    return r"done\.json is malformed: run_info is a JSON string"


def mask_counts_short(run):
    _edit_done(run, lambda d: d["mask_counts"].update(layer0=[3]))
    return r"mask_counts is malformed: layer 'layer0' has \[3\]"


def mask_counts_not_a_mapping(run):
    _edit_done(run, lambda d: d.update(mask_counts="all of them"))
    return r"mask_counts is malformed"


def mask_counts_zero_weights(run):
    _edit_done(run, lambda d: d["mask_counts"].update(layer1=[0, 0]))
    return r"mask_counts is malformed: layer 'layer1' has \[0, 0\]"


def mask_counts_more_kept_than_all(run):
    _edit_done(run, lambda d: d["mask_counts"].update(layer1=[11, 10]))
    return r"mask_counts is malformed: layer 'layer1' has \[11, 10\]"


def mask_counts_not_numbers(run):
    _edit_done(run, lambda d: d["mask_counts"].update(layer1=["8", "ten"]))
    return r"mask_counts is malformed: layer 'layer1'"


DAMAGE = [empty_metrics, non_numeric_metrics, non_numeric_accuracy, metrics_not_a_list,
          truncated_initial, truncated_masks, all_losses_nan, done_is_a_list, done_not_json,
          run_info_not_an_object, mask_counts_short, mask_counts_not_a_mapping,
          mask_counts_zero_weights, mask_counts_more_kept_than_all, mask_counts_not_numbers]


# Every kind on a lottery run (its networks are drawn too); a few on a control,
# which has no validation split and is not drawn in the histograms.
CASES = ([(damage, "lottery", "") for damage in DAMAGE]
         + [(damage, "reinit", 1) for damage in (non_numeric_metrics, all_losses_nan,
                                                 truncated_masks, done_is_a_list)])


@pytest.mark.parametrize("damage,name,run_id", CASES,
                         ids=[f"{d.__name__}-{n}" for d, n, _ in CASES])
def test_a_damaged_run_is_a_problem_and_the_rest_is_analysed(tmp_path, damage, name, run_id):
    root = _tree(tmp_path / "exp")
    damaged = paths.run(paths.trial(str(root), 1), 1, name, run_id)
    reason = damage(damaged)
    before = checksums(root)
    out = tmp_path / "out"

    result = report.report(str(root), str(out))

    assert [p.path for p in result["problems"]] == [damaged]
    assert result["problems"][0].kind == reader.MALFORMED
    assert result["diverged"] == []
    problems_txt = (out / "problems.txt").read_text()
    assert problems_txt.startswith(f"{damaged}: ")
    assert re.search(reason, problems_txt), problems_txt
    # Every other run is in the tables; the damaged one in none.
    summary = {(row["experiment_name"], row["level"]): int(row["runs"])
               for row in _csv(out / "summary.csv")}
    expected = {(n, str(level)): 2 for n in ("lottery", "reinit") for level, _ in LEVELS}
    expected[(name, "1")] = 1
    assert summary == expected
    rows = _csv(out / "runs.csv")
    assert len(rows) == RUNS - 1 and damaged not in {row["path"] for row in rows}
    assert not [row for row in _csv(out / "evaluations.csv")
                if (row["trial"], row["level"], row["experiment_name"]) == ("1", "1", name)]
    assert "| 1 |" in (out / "summary.md").read_text()
    assert "1 other run (incomplete or damaged)" in (out / "summary.md").read_text()
    for figure in ("early_stop_iteration", "early_stop_accuracy", "accuracy_curves",
                   "weight_histograms"):
        assert (out / f"{figure}.png").stat().st_size > 5000
    # Reading never writes: the damaged run (and the whole tree) is unchanged.
    assert checksums(root) == before


def test_damage_outside_the_drawn_levels_is_still_found(tmp_path):
    """A truncated file is found whichever levels are drawn: tables stay the same."""
    root = _tree(tmp_path / "exp")
    damaged = paths.run(paths.trial(str(root), 2), 2, "lottery")
    _truncate(os.path.join(paths.final(damaged), "layer0.npy"))
    result = report.report(str(root), str(tmp_path / "out"), levels=[0])
    assert [(p.path, "final/layer0.npy" in p.reason) for p in result["problems"]] == [
        (damaged, True)]
    assert sum(row["runs"] for row in result["summary"]) == RUNS - 1


def test_networks_that_disagree_are_found_where_read_and_excluded_everywhere(tmp_path):
    """initial/ and masks/ of other shapes: found when the histograms read them."""
    root = _tree(tmp_path / "exp")
    damaged = paths.run(paths.trial(str(root), 1), 2, "lottery")
    save_restore.save_network(paths.initial(damaged), {"layer0": np.ones((5, 20), np.float32)})
    before = checksums(root)
    out = tmp_path / "out"
    result = report.report(str(root), str(out), levels=[0, 2])
    assert [p.path for p in result["problems"]] == [damaged]
    assert "initial/layer0.npy has shape (5, 20) but masks/layer0.npy (100,)" in \
        (out / "problems.txt").read_text()
    assert damaged not in (out / "runs.csv").read_text()
    lottery_2 = next(r for r in result["summary"]
                     if (r["experiment_name"], r["level"]) == ("lottery", 2))
    assert lottery_2["runs"] == 1
    assert checksums(root) == before


def test_nan_values_do_not_crash_metrics():
    nan = float("nan")
    partial = {"validate": {"iteration": [0, 100, 200], "loss": [nan, 0.5, nan],
                            "accuracy": [nan] * 3},
               "test": {"iteration": [0, 100, 200], "loss": [1, 1, 1],
                        "accuracy": [nan, 0.7, nan]}}
    assert metrics.early_stopping(partial)["early_stop_iteration"] == 100
    assert metrics.early_stopping(partial)["early_stop_test_accuracy"] == 0.7
    partial["validate"]["loss"] = [nan, float("inf"), nan]
    result = metrics.early_stopping(partial)
    assert math.isnan(result["early_stop_iteration"])
    assert math.isnan(result["early_stop_test_accuracy"])
    row = metrics.run_metrics({"metrics": partial, "remaining": 1.0})
    assert row["best_test_accuracy"] == 0.7 and math.isnan(row["final_test_accuracy"])
    row = metrics.run_metrics({"metrics": {"test": {"iteration": [0], "loss": [1.0],
                                                    "accuracy": [nan]}}})
    assert math.isnan(row["best_test_accuracy"])


def test_some_nan_losses_are_analysed_not_excluded(tmp_path):
    root = _tree(tmp_path / "exp")
    run = paths.run(paths.trial(str(root), 1), 1, "lottery")
    _edit_metrics(run, lambda m: m["validate"].update(loss=[3, float("nan"), 1, 0.5, None]))
    result = report.report(str(root), str(tmp_path / "out"))
    assert result["problems"] == []
    row = next(r for r in _csv(tmp_path / "out" / "runs.csv") if r["path"] == run)
    assert row["early_stop_iteration"] == "300"


def _diverge(run, iteration, reason):
    os.remove(paths.done(run))
    runs.write_diverged(run, {"iteration": iteration, "reason": reason,
                              "run_info": {"level": 2}})


def test_diverged_runs_are_listed_excluded_and_named_in_the_summary(tmp_path, capsys):
    root = _tree(tmp_path / "exp")
    lottery = paths.run(paths.trial(str(root), 2), 2, "lottery")
    reinit = paths.run(paths.trial(str(root), 1), 2, "reinit", 1)
    _diverge(lottery, 1200, "loss is nan")
    _diverge(reinit, 35, "weights are not finite")
    unfinished = paths.run(paths.trial(str(root), 1), 1, "lottery")
    os.remove(paths.done(unfinished))
    before = checksums(root)
    out = tmp_path / "out"

    report.main([f"--experiment_root={root}", f"--output_dir={out}"])

    captured = capsys.readouterr()
    assert f"problem: {lottery}: diverged at iteration 1200 (loss is nan); excluded" in \
        captured.err
    assert f"problem: {reinit}: diverged at iteration 35 (weights are not finite); " \
        "excluded" in captured.err
    assert "2 diverged runs excluded from every table and figure" in captured.err
    assert f"{RUNS - 3} complete runs analysed; 3 problem(s)." in captured.out
    problems_txt = (out / "problems.txt").read_text()
    assert f"{lottery}: diverged at iteration 1200 (loss is nan); excluded" in problems_txt
    assert f"{unfinished}: incomplete" in problems_txt
    assert "incomplete" not in problems_txt.split(lottery)[1].splitlines()[0]
    summary_md = (out / "summary.md").read_text()
    assert "Excluded: 2 diverged runs" in summary_md
    assert f"`{lottery}`" in summary_md and f"`{reinit}`" in summary_md
    assert "Left out: 1 other run (incomplete or damaged)" in summary_md
    runs_csv = (out / "runs.csv").read_text()
    assert lottery not in runs_csv and reinit not in runs_csv
    level_2 = {row["experiment_name"]: row["runs"] for row in _csv(out / "summary.csv")
               if row["level"] == "2"}
    assert level_2 == {"lottery": "1", "reinit": "1"}
    assert checksums(root) == before

    result = report.report(str(root), str(tmp_path / "again"))
    assert sorted(p.path for p in result["diverged"]) == sorted([lottery, reinit])
    assert {p.kind for p in result["diverged"]} == {reader.DIVERGED}
    records, problems = reader.load_experiment(str(root))
    assert {p.path: p.kind for p in problems} == {
        lottery: reader.DIVERGED, reinit: reader.DIVERGED, unfinished: reader.INCOMPLETE}


def test_unreadable_diverged_record_is_still_a_diverged_run(tmp_path):
    root = _tree(tmp_path / "exp")
    run = paths.run(paths.trial(str(root), 1), 0, "lottery")
    os.remove(paths.done(run))
    with open(os.path.join(run, runs.DIVERGED_FILENAME), "w") as f:
        f.write("{")
    result = report.report(str(root), str(tmp_path / "out"))
    assert [(p.path, p.kind) for p in result["diverged"]] == [(run, reader.DIVERGED)]
    assert "diverged (diverged.json is unreadable); excluded" in str(result["diverged"][0])


def test_only_diverged_runs_is_a_clear_error(tmp_path):
    run = write_run(tmp_path, 1, 0, "lottery")
    _diverge(run, 7, "loss is nan")
    with pytest.raises(ValueError, match="(?s)no complete run.*diverged at iteration 7"):
        report.report(str(tmp_path), str(tmp_path / "out"))


# --- figures

@pytest.fixture
def drawn(monkeypatch):
    """The figures report.report draws, by file name, drawn before they are saved."""
    found = {}
    save = figures.save

    def capture(figure, path):
        figure.canvas.draw()
        found[os.path.splitext(os.path.basename(path))[0]] = {
            "legends": [text.get_text() for axes in figure.axes if axes.get_legend()
                        for text in axes.get_legend().get_texts()],
            "figure": figure,
            "extents": [(axes, axes.get_window_extent(), axes.get_legend()
                         and axes.get_legend().get_window_extent()) for axes in figure.axes],
        }
        return save(figure, path)

    monkeypatch.setattr(figures, "save", capture)
    return found


def test_legends_count_one_run_in_the_singular(tmp_path, drawn):
    for level, kept in LEVELS:
        write_run(tmp_path / "exp", 1, level, "lottery", kept=kept)
        for trial in (1, 2):
            write_run(tmp_path / "exp", trial, level, "reinit", 1, kept=kept)
    write_run(tmp_path / "exp", 3, 2, "reinit", 1, kept=(64, 8))
    report.report(str(tmp_path / "exp"), str(tmp_path / "out"), levels=[0, 2])
    legends = {name: found["legends"] for name, found in drawn.items()}
    assert "lottery (1 run per level)" in legends["early_stop_iteration"]
    assert "reinit (2-3 runs per level)" in legends["early_stop_iteration"]
    assert legends["accuracy_curves"] == ["level 0: 100.0% remaining (1 run)",
                                          "level 2: 65.5% remaining (1 run)"]
    assert "level 0: 100.0% remaining (1 run)" in legends["weight_histograms"]
    everything = " ".join(text for texts in legends.values() for text in texts)
    assert "1 runs" not in everything


def test_runs_are_counted_in_words():
    assert figures.runs_per_level([1, 1]) == "1 run per level"
    assert figures.runs_per_level([2, 2]) == "2 runs per level"
    assert figures.runs_per_level([1, 3, 2]) == "1-3 runs per level"


def test_the_command_line_counts_one_run_in_the_singular(tmp_path, capsys):
    write_run(tmp_path / "exp", 1, 0, "lottery")
    report.main([f"--experiment_root={tmp_path / 'exp'}", f"--output_dir={tmp_path / 'out'}"])
    assert "1 complete run analysed; 0 problem(s)." in capsys.readouterr().out


def test_experiments_with_equal_values_are_both_visible(tmp_path, drawn):
    """Same curves for two experiments: dodged sideways, each with its own marker."""
    for level, kept in LEVELS:
        for name, run_id in (("lottery", ""), ("rearrange", 1), ("reinit", 1)):
            write_run(tmp_path / "exp", 1, level, name, run_id, kept=kept)
    report.report(str(tmp_path / "exp"), str(tmp_path / "out"))
    axes = drawn["early_stop_iteration"]["figure"].axes[0]
    bars = axes.containers  # one errorbar per experiment, in legend order
    assert [bar.get_label().split()[0] for bar in bars] == ["lottery", "reinit", "rearrange"]
    lines = [bar.lines[0] for bar in bars]
    assert len({line.get_marker() for line in lines}) == 3
    np.testing.assert_array_equal(lines[0].get_ydata(), lines[2].get_ydata())
    xs = [np.asarray(line.get_xdata(), dtype=float) for line in lines]
    assert all((xs[0] != xs[2]) & (np.abs(xs[0] / xs[2] - 1) < 0.05))  # beside, not on
    assert all(np.abs(xs[1] / (100 * np.array([1.0, 89 / 110, 72 / 110])) - 1) < 1e-9)
    assert all(bar.has_yerr for bar in bars)  # error bars are kept


def test_weight_histogram_legends_are_outside_the_bars(tmp_path, drawn):
    _tree(tmp_path / "exp")
    report.report(str(tmp_path / "exp"), str(tmp_path / "out"))
    extents = drawn["weight_histograms"]["extents"]
    panels = [box for axes, box, _ in extents if axes.patches]
    legends = [legend for _, _, legend in extents if legend is not None]
    assert len(panels) == 2 and len(legends) == 2
    for legend in legends:
        for panel in panels:
            assert not legend.overlaps(panel), (legend, panel)


def test_a_figure_with_nothing_to_draw_is_a_note_not_an_abort(tmp_path):
    root = tmp_path / "exp"
    write_run(root, 1, 0, "reinit", 1)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "accuracy_curves.png").write_bytes(b"stale")
    result = report.report(str(root), str(out))
    notes = [p.reason for p in result["problems"] if p.kind == reader.NOTE]
    assert notes == ["no complete 'lottery' runs with test evaluations: accuracy_curves "
                     "left out", "no complete 'lottery' runs: weight_histograms left out"]
    assert not (out / "accuracy_curves.png").exists()
    assert "Left out" not in (out / "summary.md").read_text()  # notes are not runs

    validate_only = write_run(root, 1, 0, "lottery", validate_loss=[3, 2, 1, 0.5, 0.9])
    _edit_metrics(validate_only, lambda m: m.pop("test"))
    result = report.report(str(root), str(out))
    assert [p.reason for p in result["problems"]] == [
        "no complete 'lottery' runs with test evaluations at levels 0: accuracy_curves "
        "left out"]
    assert (out / "weight_histograms.png").exists()


def test_runs_of_different_lengths_averaged_together_are_noted(tmp_path):
    root = tmp_path / "exp"
    for trial in (1, 2):
        run = write_run(root, trial, 0, "lottery")
    done = save_restore.read_json(paths.done(run))
    done["iterations"] = 50000
    save_restore.write_json(paths.done(run), done)
    result = report.report(str(root), str(tmp_path / "figures"))
    notes = [str(p) for p in result["problems"] if "different lengths" in str(p)]
    assert len(notes) == 1 and "lottery at level 0" in notes[0]
    assert "400 iterations" in notes[0] and "50000 iterations" in notes[0]
    with pytest.raises(ValueError, match="inside the experiment"):
        report.report(str(root), str(root / "trial1" / "figures"))


def test_levels_asked_for_that_have_no_run_are_named(tmp_path):
    root = _tree(tmp_path / "exp")
    result = report.report(str(root), str(tmp_path / "out"), levels="0,5,9")
    notes = [str(p) for p in result["problems"] if p.kind == reader.NOTE]
    assert notes == [f"{root}: --levels asks for 5,9, which have no complete 'lottery' run "
                     "(levels with runs: 0,1,2); the curves and histograms show 0"]
    assert notes[0] in (tmp_path / "out" / "problems.txt").read_text()
