"""Training speed of LeNet-300-100: the trainer against a plain per-step loop.

    python bench/bench_trainer.py [--iterations=3000] [--threads=1] [--data=DIR]

Prints JSON. For each case (dense or masked network; test evaluation every 100
iterations or none) it times the trainer (the iterations between evaluations in
one compiled tf.function) and a plain loop that calls a compiled step once per
iteration from Python, both on the same data, model and batch order, in this
run, and gives their ratio. Times include tracing, as a user would see them;
the trainer's startup (a 100-iteration run) and its steady rate without the
startup are given too.
"""

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lottery_ticket.datasets.dataset_mnist import DatasetMnist  # noqa: E402
from lottery_ticket.foundations import trainer  # noqa: E402
from lottery_ticket.foundations.dataset_base import DatasetBase  # noqa: E402
from lottery_ticket.foundations.model_fc import ModelFc  # noqa: E402

LENET = {"layers": [(300, "relu"), (100, "relu"), (10, None)]}
_SHORT_RUN = 100  # iterations: a run that is almost all startup
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "shared", "data", "fashion-mnist")


def load_data(location: str):
    """Fashion-MNIST if present; otherwise random data of the same shapes, said so."""
    if os.path.isdir(location):
        return DatasetMnist(location, train_order_seed=0), f"fashion-mnist at {location}"
    rng = np.random.default_rng(0)
    split = lambda n: (rng.random((n, 784), dtype=np.float32),
                       rng.integers(0, 10, n).astype(np.int32))
    return (DatasetBase(split(60000), 60, split(10000), train_order_seed=0),
            f"synthetic random (no data at {location})")


def level1_masks(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {name: (rng.random(shape) >= fraction).astype(np.float32)
            for name, shape, fraction in (("layer0", (784, 300), 0.2),
                                          ("layer1", (300, 100), 0.2),
                                          ("layer2", (100, 10), 0.1))}


def time_trainer(dataset, masks, iterations: int, test_interval) -> float:
    model = ModelFc(LENET, masks=masks, seed=0)
    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        trainer.train(dataset, model, sgd, ("iterations", iterations), directory,
                      test_interval=test_interval, save_summaries=False,
                      progress=lambda *args: None)
        return time.perf_counter() - start


def time_plain_loop(dataset, masks, iterations: int, test_interval) -> float:
    """The common hand-written TF2 loop: one Python call of a compiled step per batch."""
    model = ModelFc(LENET, masks=masks, seed=0)
    model.build(dataset.example_shape)
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.1)
    variables = model.trainable_variables
    x_test, y_test = (tf.constant(a) for a in dataset.test)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = model.loss(model(x, training=True), y)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function
    def evaluate(x, y):
        logits = model(x)
        return model.loss(logits, y), model.accuracy(logits, y)

    x_train, y_train = dataset.train
    start = time.perf_counter()
    order = dataset.batch_indices(0, iterations)
    for iteration in range(iterations):
        step(x_train[order[iteration]], y_train[order[iteration]])
        if test_interval and (iteration + 1) % test_interval == 0:
            [float(v) for v in evaluate(x_test, y_test)]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow CPU threads; 0 keeps TensorFlow's default")
    parser.add_argument("--data", default=os.environ.get(
        "LOTTERY_TICKET_BENCH_DATA", DEFAULT_DATA))
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    dataset, data_note = load_data(args.data)
    # Process-wide one-time costs (kernel selection, first allocations) would
    # otherwise all land on whichever case runs first.
    time_plain_loop(dataset, None, 200, 100)
    time_trainer(dataset, None, 200, 100)
    cases = []
    short = _SHORT_RUN
    for network, masks in (("dense", None), ("masked level 1", level1_masks())):
        for test_interval in (100, None):
            plain = time_plain_loop(dataset, masks, args.iterations, test_interval)
            compiled = time_trainer(dataset, masks, args.iterations, test_interval)
            startup = time_trainer(dataset, masks, short, test_interval)
            cases.append({
                "network": network,
                "test_interval": test_interval,
                "trainer_iterations_per_second": round(args.iterations / compiled, 1),
                "plain_loop_iterations_per_second": round(args.iterations / plain, 1),
                "speedup_vs_plain_loop": round(plain / compiled, 2),
                # A 50,000-iteration run pays the startup (tracing, first
                # evaluation, saving the initial weights) once; this is the rest.
                "trainer_startup_seconds": round(startup, 2),
                "trainer_steady_iterations_per_second": round(
                    (args.iterations - short) / max(compiled - startup, 1e-9), 1),
            })
    json.dump({
        "benchmark": "LeNet-300-100 training, batch 60",
        "iterations": args.iterations,
        "threads": args.threads or "tensorflow default",
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "data": data_note,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "cases": cases,
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
