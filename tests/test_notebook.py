"""The library in a real Jupyter kernel (nbclient + ipykernel), and its manners as a guest.

Importing the library must leave its host's global state alone (matplotlib's
backend, logging, absl flags, the environment), figures must show inline,
training must show live progress and no retracing warnings, and the example
notebook must run top to bottom.
"""

import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import lottery_ticket

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPOSITORY, "examples", "lottery_ticket_quickstart.ipynb")


def public_modules():
    """Every module of the installed library, as a user could import it."""
    names = []
    for module in pkgutil.walk_packages(lottery_ticket.__path__, "lottery_ticket."):
        parts = module.name.split(".")
        if parts[1] in ("tests", "bench", "setup", "examples", "build") or any(
                part.startswith("_") for part in parts[1:]):
            continue
        names.append(module.name)
    return sorted(names)


def test_every_public_module_is_listed():
    modules = public_modules()
    for expected in ("lottery_ticket.analysis.figures", "lottery_ticket.foundations.trainer",
                     "lottery_ticket.cli.argfiles", "lottery_ticket.mnist_fc.runners.train"):
        assert expected in modules


_SNAPSHOT = textwrap.dedent("""
    import json, logging, os, signal, sys, warnings
    import absl.flags, absl.logging, matplotlib, numpy, tensorflow

    def snapshot():
        loggers = {name: (getattr(logger, "level", None),
                          [type(h).__name__ for h in getattr(logger, "handlers", [])],
                          getattr(logger, "propagate", None))
                   for name, logger in logging.root.manager.loggerDict.items()
                   if not name.startswith("lottery_ticket")}
        return {
            "environment": dict(os.environ),
            "backend": matplotlib.rcParams._get_backend_or_none(),
            "rc": {k: repr(v) for k, v in matplotlib.rcParams.items() if k != "backend"},
            "pyplot": "matplotlib.pyplot" in sys.modules,
            "root": (logging.root.level, [type(h).__name__ for h in logging.root.handlers]),
            "loggers": loggers,
            "absl_flags": sorted(absl.flags.FLAGS),
            "absl_verbosity": absl.logging.get_verbosity(),
            "warnings": [repr(f) for f in warnings.filters],
            "signals": [repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)],
            "excepthook": repr(sys.excepthook),
            "numpy_print": repr(numpy.get_printoptions()),
            "threads": (tensorflow.config.threading.get_intra_op_parallelism_threads(),
                        tensorflow.config.threading.get_inter_op_parallelism_threads()),
        }

    before = snapshot()
    for name in json.loads(sys.argv[1]):
        __import__(name)
    # Drawing a figure must not bring pyplot in either.
    from lottery_ticket.analysis import figures
    row = {"experiment_name": "lottery", "level": 0, "runs": 1, "remaining": 1.0,
           "early_stop_iteration_mean": 100, "early_stop_iteration_min": 100,
           "early_stop_iteration_max": 100}
    figures.early_stopping_figure([row], "early_stop_iteration", title="t")
    after = snapshot()
    # Loggers that other libraries create on import are new, not changed.
    after["loggers"] = {name: after["loggers"].get(name) for name in before["loggers"]}
    changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    print(json.dumps(changed, default=repr))
""")


def test_importing_every_module_changes_no_global_state_of_the_host(tmp_path):
    script = tmp_path / "snapshot.py"
    script.write_text(_SNAPSHOT)
    environment = dict(os.environ, MPLBACKEND="svg")
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run([sys.executable, str(script), json.dumps(public_modules())],
                            capture_output=True, text=True, env=environment, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    changed = json.loads(result.stdout.strip().splitlines()[-1])
    assert changed == {}, changed


def _run(notebook, cwd, timeout=600, **environment):
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    previous = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)  # the kernel inherits the test's environment
    try:
        client.execute()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def _outputs(cell):
    return cell.get("outputs", [])


def _texts(cell):
    """Everything a cell printed or displayed as text."""
    found = []
    for output in _outputs(cell):
        if output.get("output_type") == "stream":
            found.append(output.get("text", ""))
        for kind in ("text/plain", "text/html"):
            found.append(str(output.get("data", {}).get(kind, "")))
    return "\n".join(found)


def _images(cell):
    return [o for o in _outputs(cell) if "image/png" in o.get("data", {})]


def test_in_a_kernel_figures_show_inline_and_training_shows_progress_without_warnings(
        tmp_path, fashion_mnist_dir):
    imports = "\n".join(f"import {name}" for name in public_modules())
    train = textwrap.dedent(f"""
        import functools
        import tensorflow as tf
        from lottery_ticket.datasets.dataset_mnist import DatasetMnist
        from lottery_ticket.foundations import pruning, trainer
        from lottery_ticket.foundations.model_base import ModelBase
        from lottery_ticket.foundations.model_fc import ModelFc

        dataset = DatasetMnist({fashion_mnist_dir!r}, train_order_seed=0,
                               validation_size=5000)
        lenet = {{"layers": [(300, "relu"), (100, "relu"), (10, None)]}}
        sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
        dense = trainer.train(dataset, ModelFc(lenet, seed=0), sgd, ("iterations", 200),
                              "runs/dense", test_interval=50, validate_interval=100)
        masks = pruning.prune_by_percent({{"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}},
                                         {{k: v * 0 + 1 for k, v in dense.final.items()}},
                                         dense.final)
        for level in (1, 2):
            ticket = trainer.train(dataset, ModelFc(lenet, presets=dense.initial, masks=masks),
                                   sgd, ("iterations", 200), f"runs/level{{level}}",
                                   test_interval=50, validate_interval=100)
            masks = pruning.prune_by_percent({{"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}},
                                             masks, ticket.final)

        class Tiny(ModelBase):
            def forward(self, inputs, training=False):
                x = self.dense_layer("hidden", tf.reshape(inputs, [-1, 784]), 16, "relu")
                return self.dense_layer("out", x, 10)

        for seed in (1, 2):
            tiny = trainer.train(dataset, Tiny(seed=seed), sgd, ("iterations", 100),
                                 f"runs/tiny{{seed}}", test_interval=50)
        print("test accuracy", dense.metrics["test"]["accuracy"][-1])
    """)
    plot = textwrap.dedent("""
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3], [1, 4, 9])
        plt.show()
    """)
    # Drawn before anything imports pyplot: the figure shows itself.
    figure = textwrap.dedent("""
        from lottery_ticket.analysis import figures
        rows = [{"experiment_name": "lottery", "level": level, "runs": 1,
                 "remaining": 0.8 ** level, "early_stop_iteration_mean": 100 + level,
                 "early_stop_iteration_min": 100, "early_stop_iteration_max": 110}
                for level in range(3)]
        figures.early_stopping_figure(rows, "early_stop_iteration", title="inline")
    """)
    notebook = new_notebook(cells=[new_code_cell(imports), new_code_cell(train),
                                   new_code_cell(figure), new_code_cell(plot)])
    _run(notebook, tmp_path)
    imported, trained, drawn, plotted = notebook.cells
    assert not _outputs(imported), _texts(imported)
    text = _texts(trained)
    assert "retracing" not in text, text
    # The live progress line ends at the last iteration, with the metrics.
    assert "iteration 200/200" in text and "test acc" in text, text
    assert "<progress" in text
    assert "test accuracy 0." in text
    assert _images(drawn), _texts(drawn)
    assert _images(plotted), "a pyplot figure drawn after importing the library is not inline"


def test_the_quickstart_notebook_runs_top_to_bottom(tmp_path, fashion_mnist_dir):
    notebook = nbformat.read(QUICKSTART, as_version=4)
    for cell in notebook.cells:  # stored without outputs
        assert not cell.get("outputs") and not cell.get("execution_count")
    _run(notebook, tmp_path, LOTTERY_TICKET_MNIST=fashion_mnist_dir,
         QUICKSTART_ITERATIONS="300", QUICKSTART_RESULTS=str(tmp_path / "results"))
    images = [image for cell in notebook.cells for image in _images(cell)]
    assert len(images) >= 2
    for level in range(4):
        assert (tmp_path / "results" / "trial1" / str(level) / "lottery" / "done.json").exists()
    for level in range(1, 4):
        assert (tmp_path / "results" / "trial1" / str(level) / "reinit1" / "done.json").exists()
    text = "\n".join(_texts(cell) for cell in notebook.cells)
    assert "retracing" not in text
    assert "reinit   level 3" in text and "lottery  level 0" in text
