"""Runs that differ in their settings are separate series; comparison figures."""

import json
import os

from test_analysis import write_run
from lottery_ticket.analysis import metrics, reader, report
from lottery_ticket.foundations import paths

LEVELS = ((0, (100, 10)), (1, (80, 8)), (2, (64, 7)))


def _with_config(run, **concerns):
    """Records the run as made with these configuration settings (format 2)."""
    with open(paths.done(run), encoding="utf-8") as f:
        done = json.load(f)
    done["run_info"]["config"] = concerns
    with open(paths.done(run), "w", encoding="utf-8") as f:
        json.dump(done, f)
    return run


def _tree(root, oneshot=False):
    for level, kept in LEVELS:
        write_run(root, 1, level, "lottery", kept=kept)
        _with_config(write_run(root, 2, level, "lottery", kept=kept),
                     pruning={"pruning": "global"})
        if level:
            write_run(root, 1, level, "reinit", 1, kept=kept)
            if oneshot:
                write_run(root, 1, level, "oneshot", kept=kept)


def test_runs_differing_in_a_setting_are_labelled_apart(tmp_path):
    _tree(tmp_path / "exp")
    records, problems = reader.load_experiment(str(tmp_path / "exp"))
    assert not problems
    assert records[0]["settings"]["pruning"] in ("layerwise", "global")
    labelled = metrics.label_series(records)
    names = {(r["base_name"], r["experiment_name"]) for r in labelled}
    assert names == {("lottery", "lottery (pruning=global)"),
                     ("lottery", "lottery (pruning=layerwise)"), ("reinit", "reinit")}
    # The records given are not changed.
    assert {r["experiment_name"] for r in records} == {"lottery", "reinit"}
    summary = metrics.summarize(metrics.run_metrics(r) for r in labelled)
    lottery = [row for row in summary if row["experiment_name"].startswith("lottery")]
    assert len(lottery) == 6 and all(row["runs"] == 1 for row in lottery)


def test_the_report_draws_each_series_and_says_which_curves_it_shows(tmp_path):
    _tree(tmp_path / "exp")
    result = report.report(str(tmp_path / "exp"), str(tmp_path / "out"))
    names = {row["experiment_name"] for row in result["summary"]}
    assert names == {"lottery (pruning=global)", "lottery (pruning=layerwise)", "reinit"}
    notes = [str(p) for p in result["problems"] if p.kind == reader.NOTE]
    assert any("curves and histograms show 'lottery (pruning=global)'" in n for n in notes)
    assert os.path.exists(tmp_path / "out" / "accuracy_curves.png")
    assert not os.path.exists(tmp_path / "out" / "iterative_vs_oneshot.png")


def test_one_shot_runs_get_the_iterative_vs_one_shot_figure(tmp_path):
    _tree(tmp_path / "exp", oneshot=True)
    stale = tmp_path / "out" / "rewinding.png"
    os.makedirs(stale.parent)
    stale.write_bytes(b"an earlier report's")
    result = report.report(str(tmp_path / "exp"), str(tmp_path / "out"))
    figure = str(tmp_path / "out" / "iterative_vs_oneshot.png")
    assert figure in result["written"]
    with open(figure, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not stale.exists()
    oneshot = [row for row in result["summary"] if row["experiment_name"] == "oneshot"]
    assert [row["level"] for row in oneshot] == [1, 2]


def test_figures_name_bad_metrics_and_paths(tmp_path):
    import pytest
    from lottery_ticket.analysis import figures
    rows = [{"experiment_name": "lottery", "level": 0, "runs": 1, "remaining": 1.0,
             "early_stop_iteration_mean": 100, "early_stop_iteration_min": 100,
             "early_stop_iteration_max": 100}]
    with pytest.raises(ValueError, match="metric 'bogus' is not in the summary; "
                                         "summarized metrics: early_stop_iteration"):
        figures.early_stopping_figure(rows, "bogus")
    with pytest.raises(ValueError, match="has no file name"):
        figures.early_stopping_figure(rows, "early_stop_iteration", path=str(tmp_path / ".png"))
    with pytest.raises(ValueError, match=r"not one of \('png', 'svg'\)"):
        figures.early_stopping_figure(rows, "early_stop_iteration", path=str(tmp_path / "a.pdf"))
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(OSError, match=f"cannot write the figure {blocked}/a.png"):
        figures.early_stopping_figure(rows, "early_stop_iteration", path=str(blocked / "a.png"))
    figure = figures.early_stopping_figure(rows, "early_stop_iteration",
                                           path=str(tmp_path / "new" / "a.svg"))
    assert (tmp_path / "new" / "a.svg").read_text().startswith("<?xml")
    assert figure.axes[0].get_ylabel() == "early-stopping iteration"


def test_lottery_runs_rewound_to_different_iterations_get_the_rewinding_figure(tmp_path):
    root = tmp_path / "exp"
    for level, kept in LEVELS:
        write_run(root, 1, level, "lottery", kept=kept)  # predates rewinding: K=0
        _with_config(write_run(root, 2, level, "lottery", kept=kept),
                     training={"rewind_iteration": 100})
    result = report.report(str(root), str(tmp_path / "out"))
    assert str(tmp_path / "out" / "rewinding.png") in result["written"]
    names = sorted({row["experiment_name"] for row in result["summary"]})
    assert names == ["lottery (rewind_iteration=0)", "lottery (rewind_iteration=100)"]


def test_the_rewinding_figure_compares_only_runs_that_differ_in_k(tmp_path):
    root = tmp_path / "exp"
    for level, kept in LEVELS:
        write_run(root, 1, level, "lottery", kept=kept)
        _with_config(write_run(root, 2, level, "lottery", kept=kept),
                     training={"rewind_iteration": 100})
        _with_config(write_run(root, 3, level, "lottery", kept=kept),
                     pruning={"pruning": "global"})
    result = report.report(str(root), str(tmp_path / "out"))
    assert str(tmp_path / "out" / "rewinding.png") in result["written"]
    assert report._rewinding_series(metrics.label_series(
        reader.load_experiment(str(root))[0])) == [
        "lottery (pruning=layerwise, rewind_iteration=0)",
        "lottery (pruning=layerwise, rewind_iteration=100)"]


def test_an_experiment_name_with_no_runs_is_a_clear_error(tmp_path):
    import pytest
    _tree(tmp_path / "exp")
    with pytest.raises(ValueError, match="--experiment_name=reinti: no complete runs of that "
                                         "name .* Did you mean 'reinit'"):
        report.report(str(tmp_path / "exp"), str(tmp_path / "out"), experiment_name="reinti")
