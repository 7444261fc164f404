"""Instability analysis (linear mode connectivity) of a trial's levels."""

import json
import os

import numpy as np
import pytest

from conftest import register_synthetic_dataset
from lottery_ticket.analysis import reader, report, science
from lottery_ticket.experiments import instability, lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, save_restore

DATASET = register_synthetic_dataset()
CONFIG = ExperimentConfig().replace(
    dataset=DATASET, data_location="unused", validation_size=0,
    layers=((32, "relu"), (16, "relu"), (10, None)), training_len=("iterations", 40),
    batch_size=20, test_interval=20, levels=1, learning_rate=0.1)


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("instability") / "trial1")
    lottery.run_trial(directory, CONFIG, seed=1, progress=False)
    return directory


def _final_test_accuracy(run_dir):
    metrics = json.load(open(paths.metrics(run_dir)))
    assert metrics["test"]["iteration"][-1] == 40
    return metrics["test"]["accuracy"][-1]


def test_copies_with_the_same_order_are_perfectly_stable(trial):
    record = instability.run_instability(trial, 0, 0, seeds=(3, 3), interpolation_points=5,
                                         progress=False)
    errors = [point["error"] for point in record["path"]]
    assert len(errors) == 5 and [p["alpha"] for p in record["path"]] == [0, .25, .5, .75, 1]
    assert record["instability"] == pytest.approx(0.0, abs=1e-6)
    a, b = record["copies"]
    for copy, error in zip((a, b), record["endpoint_errors"]):
        assert error == pytest.approx(1.0 - _final_test_accuracy(copy), abs=1e-6)
    final_a = save_restore.restore_network(paths.final(a))
    final_b = save_restore.restore_network(paths.final(b))
    assert "layer0.bias" in final_a
    # Trained together as a population of 2: equal to float rounding.
    for name in final_a:
        np.testing.assert_allclose(final_a[name], final_b[name], rtol=1e-5, atol=1e-6)
    assert json.load(open(paths.done(a)))["run_info"]["population"] == {"size": 2,
                                                                        "member": 0}


def test_a_ticket_from_iteration_k_records_its_path_and_resumes(trial):
    record = instability.run_instability(trial, 1, 10, seeds=(1, 2), interpolation_points=4,
                                         progress=False)
    where = instability.directory(trial, 1, 10)
    assert where.endswith(os.path.join("1", "instability_k10"))
    # The dense network trained 0..10 once, in level 0's place; the copies from there.
    start = os.path.join(instability.directory(trial, 0, 10), "start")
    assert json.load(open(paths.metrics(start)))["test"]["iteration"][-1] == 10
    masks = save_restore.restore_network(paths.masks(paths.run(trial, 1)))
    for copy, error in zip(record["copies"], record["endpoint_errors"]):
        metrics = json.load(open(paths.metrics(copy)))
        assert metrics["test"]["iteration"][0] == 10  # trained from iteration k
        assert error == pytest.approx(1.0 - metrics["test"]["accuracy"][-1], abs=1e-6)
        final = save_restore.restore_network(paths.final(copy))
        assert all(np.all(final[name][masks[name] == 0] == 0) for name in masks)
    errors = [point["error"] for point in record["path"]]
    assert record["instability"] == pytest.approx(
        max(errors) - (errors[0] + errors[-1]) / 2)
    assert record["remaining"] == pytest.approx(lottery.remaining_fraction(masks))
    # Rerunning reads the record back; other settings are refused, nothing is lost.
    stamp = os.path.getmtime(os.path.join(where, instability.RECORD))
    again = instability.run_instability(trial, 1, 10, seeds=(1, 2), interpolation_points=4)
    assert again == json.loads(json.dumps(record))
    assert os.path.getmtime(os.path.join(where, instability.RECORD)) == stamp
    with pytest.raises(ValueError, match="interpolation_points: 4 -> 6"):
        instability.run_instability(trial, 1, 10, seeds=(1, 2), interpolation_points=6)
    with pytest.raises(ValueError, match="rewind_iteration"):
        instability.run_instability(trial, 0, 40, seeds=(1, 2))
    # The report's reader leaves the analyses out of the runs and reads them on their own.
    records, problems = reader.load_experiment(trial)
    assert not problems
    assert {r["experiment_name"] for r in records} == {"lottery"}
    found = science.read_instability(os.path.dirname(trial))
    assert [(r["trial"], r["level"], r["k"]) for r in found if r["k"] == 10] == [
        ("1", 1, 10)]


def test_the_command_line(trial, capsys):
    from lottery_ticket.mnist_fc.runners import instability as runner
    try:
        runner.main(["--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    assert "--interpolation_points" in out and "--instability_iterations" in out
    try:
        runner.main([f"--trial_dir={trial}", "--levels=1", "--instability_iterations=0",
                     "--interpolation_points=3", "--seeds=5,5", "--mnist_location=unused"])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    out = capsys.readouterr().out
    remaining = lottery.remaining_fraction(
        save_restore.restore_network(paths.masks(paths.run(trial, 1))))
    assert f"level 1 ({100 * remaining:.2f}% remain), k=0: instability 0.00%" in out
    # One analysis per line, as argfile batches give it.
    where = instability.directory(trial, 1, 20)
    try:
        runner.main([f"--output_dir={where}", "--interpolation_points=3", "--seeds=5,5"])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    assert json.load(open(os.path.join(where, instability.RECORD)))["k"] == 20
    assert instability.place(where) == (trial, 1, 20)
    with pytest.raises(ValueError, match="not an analysis directory"):
        instability.place(os.path.join(trial, "1", "lottery"))
    with pytest.raises(ValueError, match="whole numbers"):
        instability.parse_ints("0,a", "instability_iterations")


def test_the_report_draws_the_analyses(trial, tmp_path):
    instability.run_instability(trial, 0, 0, seeds=(3, 3), interpolation_points=5,
                                progress=False)
    result = report.report(os.path.dirname(trial), str(tmp_path / "figures"))
    figures_dir = tmp_path / "figures"
    assert os.path.isfile(figures_dir / "instability.png")
    table = open(figures_dir / "instability.md").read()
    assert "| 0 | 100.0% | 0 | 1 | 0.00 |" in table
    assert str(figures_dir / "instability.md") in result["written"]


@pytest.mark.slow
def test_instability_on_fashion_mnist_records_resumes_and_refuses(fashion_mnist_dir, tmp_path):
    config = ExperimentConfig().replace(
        data_location=fashion_mnist_dir, validation_size=0,
        layers=((64, "relu"), (32, "relu"), (10, None)), training_len=("iterations", 200),
        batch_size=60, test_interval=100, levels=0, learning_rate=0.1)
    trial = str(tmp_path / "trial1")
    lottery.run_trial(trial, config, seed=1, progress=False)
    for k in (0, 50):
        record = instability.run_instability(trial, 0, k, interpolation_points=3,
                                             progress=False)
        where = instability.directory(trial, 0, k)
        assert os.path.isfile(os.path.join(where, instability.RECORD))
        assert (record["k"], record["level"], len(record["path"])) == (k, 0, 3)
        metrics = []
        for copy, error in zip(record["copies"], record["endpoint_errors"]):
            metrics.append(open(paths.metrics(copy)).read())
            test = json.loads(metrics[-1])["test"]
            assert test["iteration"][0] == k and test["iteration"][-1] == 200
            assert error == pytest.approx(1.0 - test["accuracy"][-1], abs=1e-6)
        assert record["endpoint_errors"] == [record["path"][0]["error"],
                                             record["path"][-1]["error"]]
        assert record["endpoint_errors"][0] < 0.5  # it learned (chance is 0.9)
        # Rerunning reads the record back, training nothing.
        again = instability.run_instability(trial, 0, k, interpolation_points=3,
                                            progress=False)
        assert again == json.loads(json.dumps(record))
        assert [open(paths.metrics(copy)).read() for copy in record["copies"]] == metrics
        with pytest.raises(ValueError, match="interpolation_points: 3 -> 4"):
            instability.run_instability(trial, 0, k, interpolation_points=4, progress=False)
    # k = 50 started from level 0's network trained 0..50, made once.
    start = os.path.join(instability.directory(trial, 0, 50), "start")
    assert json.load(open(paths.metrics(start)))["test"]["iteration"][-1] == 50
