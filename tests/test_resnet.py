"""ResNet-20 and VGG-16 (OpenLTH's CIFAR networks) as registered Keras models, and
ResNet-20 from the command line: runs, resumes after SIGKILL, refuses changed
settings, and its exported ticket gives done.json's test accuracy in plain Keras."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from lottery_ticket.cifar10_resnet import constants
from lottery_ticket.experiments import build, components, export
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations.keras_architectures import resnet_cifar, vgg_cifar

sys.path.insert(0, os.path.dirname(__file__))
from test_export import predict_in_plain_keras  # noqa: E402


def count(model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def test_parameter_counts_are_openlths():
    # OpenLTH: cifar_resnet_20 272,474; cifar_vgg_16 (with BN) 14,728,266.
    assert count(resnet_cifar(20)) == 272474
    assert count(vgg_cifar(16)) == 14728266


def test_registered_models_prune_every_convolution_but_not_the_output():
    for name in constants.MODELS:
        config = constants.CONFIGS[name]
        model = build.model(config, seed=1).build((32, 32, 3))
        assert set(config["prune_percents"]) == set(model.layer_names) - {"output"}
        assert model.output_layer == "output"
        assert components.model_builder(name) is components.MODELS.get(name)
    with pytest.raises(ValueError, match="no function 'nothing'"):
        components.model_builder("lottery_ticket.foundations.keras_architectures:nothing")


def test_schedule_drops_and_warms_up_and_nesterov_reaches_the_optimizer():
    config = constants.DEFAULT.replace(lr_drops="2,3", lr_drop_unit="iterations",
                                       warmup_iterations=2, nesterov=True)
    optimizer = build.optimizer_fn(config)()
    rates = []
    for step in range(5):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rates, [0.05, 0.1, 0.01, 0.001, 0.001], rtol=1e-6)
    assert optimizer.nesterov is True and optimizer.momentum == 0.9
    # A level rewound to iteration 2 trains from there: its first step has iteration 2's rate.
    from lottery_ticket.experiments import single_run  # pylint: disable=C0415
    rewound = single_run.training_arguments(config.replace(rewind_iteration=2), level=1)
    assert rewound["start_iteration"] == 2
    optimizer = rewound["optimizer_fn"]()
    rewound_rates = []
    for step in range(3):
        optimizer.iterations.assign(step)
        rewound_rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rewound_rates, rates[2:], rtol=1e-6)
    level0 = single_run.training_arguments(config.replace(rewind_iteration=2), level=0)
    assert float(level0["optimizer_fn"]().learning_rate) == pytest.approx(rates[0])
    decoupled = build.optimizer_fn(config.replace(weight_decay_type="decoupled"))()
    assert decoupled.weight_decay == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="lr_drops"):
        config.replace(lr_drops="120,80")
    with pytest.raises(ValueError, match="cannot take these"):
        build.model(ExperimentConfig().replace(weight_decay=1e-4))  # fc: no L2 in its loss


def write_fashion_subset(directory: str, source: str, train: int, test: int) -> None:
    """The first examples of Fashion-MNIST as IDX files (a small data set to train on)."""
    from lottery_ticket.datasets import dataset_mnist as idx
    for (images, labels), size in (((idx.TRAIN_IMAGES, idx.TRAIN_LABELS), train),
                                   ((idx.TEST_IMAGES, idx.TEST_LABELS), test)):
        x, y = idx.load_split(source, images, labels)
        with open(os.path.join(directory, images), "wb") as f:
            f.write(struct.pack(">IIII", 2051, size, 28, 28) + x[:size].tobytes())
        with open(os.path.join(directory, labels), "wb") as f:
            f.write(struct.pack(">II", 2049, size) + y[:size].tobytes())


@pytest.mark.slow
def test_resnet20_from_the_command_line_resumes_refuses_and_exports(tmp_path, capsys,
                                                                    fashion_mnist_dir):
    data = tmp_path / "data"
    data.mkdir()
    write_fashion_subset(str(data), fashion_mnist_dir, 256, 100)
    out = tmp_path / "trial"
    command = [sys.executable, "-m", "lottery_ticket.cifar10_resnet.runners.lottery_experiment",
               f"--output_dir={out}", f"--data_location={data}", "--dataset=fashion_mnist_32",
               "--levels=1", "--training_len=iterations:8", "--batch_size=16",
               "--test_interval=8", "--lr_drops=6", "--lr_drop_unit=iterations"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    level0 = out / "0" / "lottery" / "done.json"
    deadline = time.time() + 240
    while not level0.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # during level 1
    process.wait()
    assert level0.exists() and not (out / "1" / "lottery" / "done.json").exists()
    finished_at = os.path.getmtime(level0)
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    assert os.path.getmtime(level0) == finished_at  # level 0 was read back, not redone
    done = json.loads((out / "1" / "lottery" / "done.json").read_text())
    assert done["run_info"]["config"]["training"]["lr_drops"] == "6"
    masks = np.load(out / "1" / "lottery" / "masks" / "output.npy")
    assert masks.all()  # the output layer is left out of pruning
    # In this process (it has TensorFlow loaded already): a changed setting is refused.
    from lottery_ticket.cifar10_resnet.runners import lottery_experiment
    capsys.readouterr()
    try:
        lottery_experiment.COMMAND.run(command[3:-2] + ["--lr_drops=5",
                                                        "--lr_drop_unit=iterations"])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    assert code != 0 and "lr_drops" in capsys.readouterr().err
    # The exported ticket, in a Python without this library, scores done.json's accuracy.
    ticket = str(tmp_path / "ticket.keras")
    export.main([str(out / "1" / "lottery"), ticket])
    config = ExperimentConfig.from_json(done["run_info"]["config"])
    x, y = build.dataset(config, 0).test
    predictions = predict_in_plain_keras(ticket, x, str(tmp_path))
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == y))
    assert accuracy == pytest.approx(done["final"]["test"]["accuracy"], abs=1e-6)


def test_the_familys_modules_are_the_entry_points_it_declares():
    import importlib
    import pkgutil
    family = constants.FAMILY
    for subpackage, declared in (("runners", family.runner_modules()),
                                 ("argfiles", family.argfile_modules())):
        parent = importlib.import_module(f"lottery_ticket.cifar10_resnet.{subpackage}")
        present = sorted(f"{parent.__name__}.{info.name}"
                         for info in pkgutil.iter_modules(parent.__path__))
        assert present == sorted(declared), subpackage
    for module in family.runner_modules():
        assert importlib.import_module(module).COMMAND.program == f"python -m {module}"
