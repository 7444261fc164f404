"""Inference time and size of exported tickets: dense, masked export, at a few sparsities.

    python bench/bench_export.py [--models=resnet20,lenet] [--batch=256] [--repeats=20]

For each model and sparsity (0, 80%, 95%, 99% of the prunable weights zeroed by
magnitude, globally, the output layer left out, as a ticket's masks would; and
LeNet-300-100 with 50/80/95% of its hidden units pruned, exported masked and
compacted) it
exports the KerasModel to a plain Keras model (KerasModel.to_keras), saves it
as .keras, and reports: the median time of one compiled forward pass of a
batch (after a warm-up), the .keras file's size, and its size gzip-compressed.
A masked export is a dense model holding zeros: Keras computes every product,
so it cannot be faster; its zeros only compress. Prints JSON.
"""

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lottery_ticket.experiments import export  # noqa: E402
from lottery_ticket.foundations import keras_architectures, pruning  # noqa: E402
from lottery_ticket.foundations.keras_model import KerasModel  # noqa: E402

SPARSITIES = (0.0, 0.8, 0.95, 0.99)


def lenet(input_shape):
    return keras.Sequential([keras.Input(input_shape),
                             keras.layers.Dense(300, activation="relu", name="fc0"),
                             keras.layers.Dense(100, activation="relu", name="fc1"),
                             keras.layers.Dense(10, name="output")])


BUILDERS = {"resnet20": ((32, 32, 3), lambda s: keras_architectures.resnet_cifar(20, s)),
            "lenet": ((784,), lenet)}


def forward_seconds(model: keras.Model, x: np.ndarray, repeats: int) -> float:
    forward = tf.function(lambda batch: model(batch, training=False))
    forward(x).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward(x).numpy()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def row(name: str, pruned: str, sparsity: float, kept: float, model: keras.Model,
        x: np.ndarray, repeats: int, directory: str) -> dict:
    path = os.path.join(directory, f"{name}_{pruned}_{sparsity}_{model.name}.keras")
    model.save(path)
    with open(path, "rb") as f:
        compressed = len(gzip.compress(f.read()))
    result = {"model": name, "pruned": pruned, "export": model.name.rsplit("_", 1)[-1],
              "sparsity": sparsity, "weights_kept": round(kept, 4),
              "parameters": model.count_params(),
              "forward_ms": round(1000 * forward_seconds(model, x, repeats), 3),
              "keras_bytes": os.path.getsize(path), "gzip_bytes": compressed}
    print(json.dumps(result), file=sys.stderr)
    return result


def measure_units(batch: int, repeats: int, directory: str):
    """LeNet-300-100 with whole hidden units pruned: masked and compacted exports."""
    shape = BUILDERS["lenet"][0]
    dense = KerasModel(lenet, seed=0).build(shape)
    weights = dense.get_current_weights()
    x = np.random.RandomState(0).rand(batch, *shape).astype(np.float32)
    rows = []
    for sparsity in (0.5, 0.8, 0.95):
        masks = pruning.prune({"fc0": sparsity, "fc1": sparsity}, dense.masks, weights,
                              selection="unit", order=dense.layer_names)
        ticket = KerasModel(lenet, presets=weights, masks=masks, seed=0).build(shape)
        kept = sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())
        masked = ticket.to_keras()
        masked.name = "lenet_masked"
        smaller = export.compact(masked)
        smaller.name = "lenet_compacted"
        rows += [row("lenet", "units", sparsity, kept, model, x, repeats, directory)
                 for model in (masked, smaller)]
    return rows


def measure(name: str, batch: int, repeats: int, directory: str):
    shape, builder = BUILDERS[name]
    dense = KerasModel(builder, seed=0).build(shape)
    weights = dense.get_current_weights()
    prunable = [layer for layer in dense.layer_names if layer != dense.output_layer]
    x = np.random.RandomState(0).rand(batch, *shape).astype(np.float32)
    rows = []
    for sparsity in SPARSITIES:
        masks = dense.masks
        if sparsity:
            # One global magnitude step to the sparsity (the output layer kept whole).
            masks = pruning.prune({layer: sparsity for layer in prunable}, dense.masks,
                                  weights, selection="global")
        ticket = KerasModel(builder, presets=weights, masks=masks, seed=0).build(shape)
        exported = ticket.to_keras()
        exported.name = f"{name}_{'dense' if not sparsity else 'masked'}"
        kept = sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())
        rows.append(row(name, "weights", sparsity, kept, exported, x, repeats, directory))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,lenet")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        rows = [result for name in arguments.models.split(",")
                for result in measure(name, arguments.batch, arguments.repeats, directory)]
        rows += measure_units(arguments.batch, arguments.repeats, directory)
    print(json.dumps({"benchmark": "exported tickets: forward time and size",
                      "batch": arguments.batch, "cpus": os.cpu_count(),
                      "machine": platform.machine(), "tensorflow": tf.__version__,
                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
