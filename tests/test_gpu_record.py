"""bench/gpu_record.sh: the prepared script that records the benchmarks on a GPU."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu_record.sh")


def _run(arguments, tmp_path, **environment):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("LOTTERY_TICKET_GPU_RECORD_ON_CPU", None)
    env.update(environment)
    return subprocess.run(["bash", SCRIPT] + arguments, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def test_without_a_gpu_it_stops_at_once_and_says_how_to_run_it_anyway(tmp_path):
    if "GPU" in subprocess.run([sys.executable, "-c", "import tensorflow as tf; print("
                                "tf.config.list_physical_devices('GPU') and 'GPU')"],
                               capture_output=True, text=True).stdout:
        pytest.skip("this machine has a GPU")
    result = _run([str(tmp_path), str(tmp_path / "out")], tmp_path)
    assert result.returncode == 2
    assert "sees no GPU" in result.stderr
    assert "LOTTERY_TICKET_GPU_RECORD_ON_CPU=1" in result.stderr
    assert not (tmp_path / "out" / "bench_trial.json").exists()


def test_a_missing_data_directory_or_argument_is_named(tmp_path):
    result = _run([str(tmp_path / "nowhere"), str(tmp_path / "out")], tmp_path)
    assert result.returncode == 2
    assert "no data directory" in result.stderr and "nowhere" in result.stderr
    assert not (tmp_path / "out").exists()
    result = _run([str(tmp_path)], tmp_path)
    assert result.returncode == 2 and "usage: bash bench/gpu_record.sh" in result.stderr


def test_an_interpreter_without_the_library_is_refused_with_the_install_command(tmp_path):
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    result = _run([str(tmp_path), str(tmp_path / "out")], tmp_path, PYTHON=str(python))
    assert result.returncode == 2
    assert "cannot import lottery_ticket" in result.stderr and "pip install -e ." in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_record_runs_both_benchmarks_and_names_the_device(tmp_path, fashion_mnist_dir):
    out = tmp_path / "record"
    result = _run([fashion_mnist_dir, str(out)], tmp_path,
                  LOTTERY_TICKET_GPU_RECORD_ON_CPU="1", LOTTERY_TICKET_GPU_RECORD_QUICK="1")
    assert result.returncode == 0, result.stderr[-3000:]
    device = json.loads((out / "device.json").read_text())
    assert "gpus" in device and "tensorflow" in device
    trial = json.loads((out / "bench_trial.json").read_text())
    assert trial["device"] == ("GPU" if device["gpus"] else "CPU")
    assert len(trial["trial"]["levels"]) == 2
    assert trial["trial"]["projected_31x50000_minutes"] > 0
    assert set(trial["levels"]["rates"]["defaults, overlap on"]) == {"100.0%", "1.0%"}
    population = json.loads((out / "bench_population.json").read_text())
    assert [row["K"] for row in population["lenet"]["rows"]] == [1, 2]
    assert population["sparse"]["rows"]
