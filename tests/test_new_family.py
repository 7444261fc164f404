"""A new experiment family needs one model file, one defaults object and thin entry points.

The fixture writes the package ``conv_family`` (a small conv net on
Fashion-MNIST) into a temporary directory, exactly as a user would write it and
as docs/howto/new-family.md shows it, and the tests use it the ways a
user would: the runners from the shell, its argfile, and a notebook.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import pruning
from lottery_ticket.foundations import runs

# The files of the family, as docs/howto/new-family.md shows them (path -> text).
MODEL = '''\
"""A small conv net for 28x28x1 images, registered as the model "small_conv"."""

import tensorflow as tf

from lottery_ticket.experiments import components
from lottery_ticket.foundations.model_base import ModelBase


class SmallConv(ModelBase):
    """conv0 (8 3x3 filters), 2x2 max-pool, fc0 (64 units), fc1 (10 logits)."""

    def __init__(self, initializer, presets=None, masks=None, seed=None):
        self.initializer = initializer
        super().__init__(presets, masks, seed, name="small_conv")

    def forward(self, inputs, training=False):
        x = self.conv2d_layer("conv0", inputs, 8, 3, activation="relu",
                              kernel_initializer=self.initializer)
        x = tf.reshape(tf.nn.max_pool2d(x, 2, 2, "VALID"), [-1, 14 * 14 * 8])
        x = self.dense_layer("fc0", x, 64, "relu", kernel_initializer=self.initializer)
        return self.dense_layer("fc1", x, 10, kernel_initializer=self.initializer)


def build(model_config, presets, masks, seed):
    return SmallConv(model_config.kernel_initializer, presets, masks, seed)


components.MODELS.register("small_conv", build)
'''

CONSTANTS = '''\
"""The conv_family defaults: a small conv net on Fashion-MNIST."""

import os

from lottery_ticket.experiments.config import (DataConfig, ExperimentConfig, ModelConfig,
                                               PruneConfig, TrainConfig)
from lottery_ticket.experiments.family import Family

from conv_family import model  # noqa: F401 (registers the model "small_conv")

DEFAULT = ExperimentConfig(
    data=DataConfig(dataset="fashion_mnist", flatten=False),
    model=ModelConfig(model="small_conv", layers=()),  # a fixed architecture
    training=TrainConfig(learning_rate=0.05, training_len=("iterations", 2000)),
    pruning=PruneConfig(prune_percents={"conv0": 0.1, "fc0": 0.2, "fc1": 0.1}, levels=10),
)

FAMILY = Family(name="conv_family", package="conv_family", defaults=DEFAULT,
                experiment_root=os.path.expanduser("~/experiments/conv_family"))
'''

LOTTERY_RUNNER = '''\
"""Runs or resumes one lottery trial; --help lists every flag."""

from lottery_ticket.cli import runners

from conv_family import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "lottery_experiment")

if __name__ == "__main__":
    main()
'''

REARRANGE_RUNNER = '''\
"""python -m conv_family.runners.rearrange --output_dir=DIR --masks=DIR --presets=DIR"""

from lottery_ticket.cli import runners

from conv_family import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "rearrange")

if __name__ == "__main__":
    main()
'''

ARGFILE_RUNNER = '''\
"""python -m conv_family.runners.argfile_runner --runner=NAME --argfile=NAME"""

from lottery_ticket.cli import runners

from conv_family import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "argfile_runner")

if __name__ == "__main__":
    main()
'''

LOTTERY_ARGFILE = '''\
"""Prints one lottery_experiment flag line per trial."""

from lottery_ticket.cli import argfiles

from conv_family import constants

main = argfiles.entry_point(constants.FAMILY, "lottery_experiment_argfile")

if __name__ == "__main__":
    main()
'''

FILES = {
    "conv_family/__init__.py": "",
    "conv_family/model.py": MODEL,
    "conv_family/constants.py": CONSTANTS,
    "conv_family/runners/__init__.py": "",
    "conv_family/runners/lottery_experiment.py": LOTTERY_RUNNER,
    "conv_family/runners/rearrange.py": REARRANGE_RUNNER,
    "conv_family/runners/argfile_runner.py": ARGFILE_RUNNER,
    "conv_family/argfiles/__init__.py": "",
    "conv_family/argfiles/lottery_experiment_argfile.py": LOTTERY_ARGFILE,
}
# The files docs/howto/new-family.md shows in full.
DOC_FILES = ("conv_family/model.py", "conv_family/constants.py",
             "conv_family/runners/lottery_experiment.py")

LAYERS = ("conv0", "fc0", "fc1")
PERCENTS = {"conv0": 0.1, "fc0": 0.2, "fc1": 0.1}
KERNEL_SIZES = {"conv0": 3 * 3 * 1 * 8, "fc0": 14 * 14 * 8 * 64, "fc1": 64 * 10}
# Short training for the tests (the family trains 2000 iterations by default).
SHORT = ["--training_len=iterations:200", "--test_interval=100", "--validate_interval=100",
         "--validation_size=1000", "--threads=1"]


@pytest.fixture(scope="module")
def family_root(tmp_path_factory):
    """A directory holding the package conv_family, as a user would write it."""
    root = tmp_path_factory.mktemp("family")
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _run(family_root, module, *flags, timeout=600):
    """python -m module flags..., with the family importable; returns the result."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(family_root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-m", module, *flags], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(family_root))


def _load(directory):
    return {name[:-len(".npy")]: np.load(os.path.join(directory, name))
            for name in os.listdir(directory) if name.endswith(".npy")}


@pytest.fixture(scope="module")
def trial(family_root, fashion_mnist_dir, tmp_path_factory):
    """One trial of two levels (0 and 1) of the family's lottery runner, from the shell."""
    trial_dir = tmp_path_factory.mktemp("experiments") / "trial1"
    result = _run(family_root, "conv_family.runners.lottery_experiment",
                  f"--output_dir={trial_dir}", f"--data_location={fashion_mnist_dir}",
                  "--levels=1", "--seed=1", *SHORT)
    return trial_dir, result


@pytest.mark.slow
def test_lottery_runner_from_the_shell(trial):
    trial_dir, result = trial
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lottery level 1 of 1 | iteration 200/200" in result.stderr
    for level in (0, 1):
        run = paths.run(str(trial_dir), level)
        assert runs.is_complete(run), run
        for part in ("initial", "final", "masks"):
            # initial/ and final/ hold the biases too.
            names = [n for layer in LAYERS
                     for n in ((layer, f"{layer}.bias") if part != "masks" else (layer,))]
            assert sorted(os.listdir(os.path.join(run, part))) == sorted(
                f"{name}.npy" for name in names)

    level1 = paths.run(str(trial_dir), 1)
    masks, final = _load(paths.masks(level1)), _load(paths.final(level1))
    for layer in LAYERS:
        assert masks[layer].size == KERNEL_SIZES[layer]
        pruned = pruning.count_to_prune(PERCENTS[layer], KERNEL_SIZES[layer])
        assert int(masks[layer].sum()) == KERNEL_SIZES[layer] - pruned, layer
        assert np.all(final[layer][masks[layer] == 0] == 0), layer
        assert np.count_nonzero(final[layer][masks[layer] == 1]) > 0, layer
    assert masks["conv0"].shape == (3, 3, 1, 8)
    # 72 conv0 weights, 10% pruned: round(7.2) = 7.
    assert int(masks["conv0"].sum()) == 65

    config = runs.read_done(level1)["run_info"]["config"]
    assert config["model"]["model"] == "small_conv"
    assert config["data"]["flatten"] is False
    assert config["data"]["dataset"] == "fashion_mnist"
    assert config["training"]["training_len"] == ["iterations", 200]
    assert config["pruning"]["prune_percents"] == PERCENTS
    metrics = json.load(open(paths.metrics(paths.run(str(trial_dir), 0)), encoding="utf-8"))
    assert metrics["test"]["iteration"][-1] == 200
    assert metrics["test"]["accuracy"][-1] > 0.5  # ten classes: chance is 0.1


def test_help_lists_every_configuration_field(family_root):
    result = _run(family_root, "conv_family.runners.lottery_experiment", "--help",
                  timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(
        "usage: python -m conv_family.runners.lottery_experiment")
    for name in ExperimentConfig.fields():
        assert re.search(rf"^  --{name}\b", result.stdout, flags=re.M), name
    # The family's defaults are the defaults shown.
    assert "--model  [default: small_conv]" in result.stdout
    assert "--dataset  [default: fashion_mnist]" in result.stdout
    assert "--flatten  [default: False]" in result.stdout


@pytest.mark.slow
def test_control_runner_reads_the_tickets_configuration(family_root, trial,
                                                        fashion_mnist_dir):
    trial_dir, result = trial
    assert result.returncode == 0, result.stderr[-3000:]
    ticket = paths.run(str(trial_dir), 1)
    control = paths.run(str(trial_dir), 1, "rearrange", 1)
    # No --data_location, --training_len or --validation_size: they are the ticket's.
    result = _run(family_root, "conv_family.runners.rearrange", f"--output_dir={control}",
                  f"--masks={paths.masks(ticket)}", f"--presets={paths.initial(ticket)}",
                  "--seed=1001", "--train_order_seed=1", "--threads=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert runs.is_complete(control)
    info = runs.read_done(control)["run_info"]
    assert info["control"] == "rearrange"
    assert info["config"]["training"]["training_len"] == ["iterations", 200]
    assert info["config"]["data"]["validation_size"] == 1000
    assert info["config"]["model"]["model"] == "small_conv"
    assert info["config"]["data"]["flatten"] is False
    assert info["config"]["data"]["data_location"] == fashion_mnist_dir
    ticket_masks, control_masks = _load(paths.masks(ticket)), _load(paths.masks(control))
    for layer in LAYERS:
        assert int(control_masks[layer].sum()) == int(ticket_masks[layer].sum()), layer
    assert not np.array_equal(control_masks["fc0"], ticket_masks["fc0"])


@pytest.mark.slow
def test_argfile_runner_resolves_the_familys_argfile(family_root, tmp_path):
    result = _run(family_root, "conv_family.runners.argfile_runner",
                  "--runner=lottery_experiment", "--argfile=lottery_experiment_argfile",
                  f"--argfile_flags=--trials=2 --experiment_root={tmp_path} "
                  "--data_location=/data/fashion", "--dry_run", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"[to run] python -m conv_family.runners.lottery_experiment "
        f"--output_dir={tmp_path / f'trial{n}'} --seed={n} --levels=10 "
        f"--data_location=/data/fashion --training_len=iterations:2000"
        for n in (1, 2)]


@pytest.mark.slow
def test_run_trial_in_a_notebook(family_root, fashion_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(family_root))
    from conv_family import constants

    from lottery_ticket.experiments import lottery

    config = constants.DEFAULT.replace(
        data_location=fashion_mnist_dir, levels=1, training_len=("iterations", 200),
        validation_size=1000, test_interval=100, validate_interval=100)
    results = lottery.run_trial(str(tmp_path / "trial0"), config, seed=0)
    assert sorted(results) == [0, 1]
    assert lottery.remaining_fraction(results[0].masks) == 1.0
    for layer in LAYERS:
        surviving = int(results[1].masks[layer].sum())
        assert surviving == KERNEL_SIZES[layer] - pruning.count_to_prune(
            PERCENTS[layer], KERNEL_SIZES[layer]), layer
    assert runs.is_complete(paths.run(str(tmp_path / "trial0"), 1))


def test_the_docs_show_the_files_the_tests_run():
    page = open(os.path.join(REPO, "docs", "howto", "new-family.md"), encoding="utf-8").read()
    blocks = re.findall(r"^```py\n(.*?)^```", page, flags=re.M | re.S)
    for relative in DOC_FILES:
        assert FILES[relative] in blocks, f"the page's {relative} differs from the tested one"

