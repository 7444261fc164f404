"""The lottery experiment from the command line, on the real Fashion-MNIST."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs


@pytest.mark.slow
def test_two_levels_of_2000_iterations_from_the_shell(fashion_mnist_dir, tmp_path, xla_auto):
    trial = tmp_path / "trial1"
    command = [sys.executable, "-m", "lottery_ticket.mnist_fc.runners.lottery_experiment",
               f"--output_dir={trial}", f"--mnist_location={fashion_mnist_dir}",
               "--training_len=('iterations', 2000)", "--iterations=1", "--threads=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lottery level 1 of 1 | iteration 2000/2000" in result.stderr
    assert "level 1:  80.04% of weights remain" in result.stdout
    for level in (0, 1):
        run = paths.run(str(trial), level)
        assert runs.is_complete(run)
        for part in ("initial", "final", "masks"):
            # initial/ and final/ hold each layer's bias too.
            biases = ["layer0.bias.npy", "layer1.bias.npy", "layer2.bias.npy"]
            assert sorted(os.listdir(os.path.join(run, part))) == sorted(
                ["layer0.npy", "layer1.npy", "layer2.npy"] + (biases if part != "masks" else []))
    metrics = json.load(open(paths.metrics(paths.run(str(trial), 0))))
    assert metrics["test"]["iteration"][-1] == 2000
    assert metrics["test"]["accuracy"][-1] > 0.78
    assert len(metrics["validate"]["iteration"]) == 21
    masks = np.load(os.path.join(paths.run(str(trial), 1), "masks", "layer0.npy"))
    assert int(masks.sum()) == 188160
    # The default path, as a user runs it: the training loop compiled with XLA.
    assert runs.read_done(paths.run(str(trial), 1))["xla"]["training"] is True

    # The same command again finds both levels complete and changes nothing.
    stamp = os.stat(paths.done(paths.run(str(trial), 1))).st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already complete" in again.stderr
    assert os.stat(paths.done(paths.run(str(trial), 1))).st_mtime_ns == stamp


def test_bad_flag_value_is_one_clear_line(tmp_path, fashion_mnist_dir):
    command = [sys.executable, "-m", "lottery_ticket.mnist_fc.runners.lottery_experiment",
               f"--output_dir={tmp_path}", f"--mnist_location={fashion_mnist_dir}",
               "--training_len=steps:5", "--iterations=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error: --training_len='steps:5' is not a training length" in result.stderr
    assert "Traceback" not in result.stderr
