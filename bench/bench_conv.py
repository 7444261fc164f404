"""Wall time of one Conv-2 lottery level on Fashion-MNIST, as the cifar10_conv family trains it.

    python bench/bench_conv.py [--iterations=2000] [--threads=0] [--data=DIR] [--dropout=0.0]

Prints JSON. One level is what a lottery trial runs per level: Conv-2 (28x28x1
inputs) trained with the family's defaults (Adam 2e-4, batches of 60, test and
validation evaluation every 100 iterations over the 10,000 test and 5,000
validation images) for --iterations, timed from the call into the trainer to
its return, tracing and saving included; then a level-1 run (the paper's
per-level rates applied by magnitude), which reuses the compiled functions the
first one traced.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from lottery_ticket.cifar10_conv import constants  # noqa: E402
from lottery_ticket.datasets.dataset_mnist import DatasetMnist  # noqa: E402
from lottery_ticket.experiments import build  # noqa: E402
from lottery_ticket.foundations import pruning, trainer  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "shared", "data", "fashion-mnist")


def time_level(dataset, config, directory: str, masks=None, presets=None):
    """(seconds, TrainResult) of one level trained as the family's runners train it."""
    model = build.model(config, presets=presets, masks=masks, seed=0)
    start = time.perf_counter()
    result = trainer.train(
        dataset, model, build.optimizer_fn(config), config["training_len"], directory,
        test_interval=config["test_interval"], validate_interval=config["validate_interval"],
        save_summaries=True, progress=False)
    return time.perf_counter() - start, result, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow CPU threads; 0 keeps TensorFlow's default")
    parser.add_argument("--data", default=os.environ.get(
        "LOTTERY_TICKET_BENCH_DATA", DEFAULT_DATA))
    parser.add_argument("--dropout", type=float, default=0.0)
    args = parser.parse_args()
    if not os.path.isdir(args.data):
        sys.exit(f"error: no Fashion-MNIST at {args.data}: pass --data=DIR.")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    config = constants.CONFIGS["conv2"].replace(
        dataset="fashion_mnist", data_location=args.data, dropout=args.dropout,
        training_len=("iterations", args.iterations))
    dataset = DatasetMnist(args.data, flatten=False, train_order_seed=0,
                           validation_size=config["validation_size"])
    with tempfile.TemporaryDirectory() as directory:
        level0_seconds, level0, dense = time_level(dataset, config,
                                                   os.path.join(directory, "0"))
        masks = pruning.prune(config["prune_percents"], dense.masks, level0.final,
                              order=dense.layer_names)
        level1_seconds, level1, _ = time_level(dataset, config, os.path.join(directory, "1"),
                                               masks=masks, presets=level0.initial)
    evaluations = len(level0.metrics["test"]["iteration"])
    json.dump({
        "benchmark": "Conv-2 lottery level on Fashion-MNIST (28x28x1), cifar10_conv defaults",
        "iterations": args.iterations,
        "batch_size": config["batch_size"],
        "optimizer": f"{config['optimizer']} {config['learning_rate']}",
        "dropout": args.dropout,
        "evaluations_per_level": {"test (10,000 images)": evaluations,
                                  "validate (5,000 images)": evaluations},
        "level0_seconds": round(level0_seconds, 1),
        "level1_seconds": round(level1_seconds, 1),
        "level0_test_accuracy": level0.metrics["test"]["accuracy"][-1],
        "level1_test_accuracy": level1.metrics["test"]["accuracy"][-1],
        "level1_iterations_per_second": round(args.iterations / level1_seconds, 2),
        "threads": args.threads or "tensorflow default",
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "data": os.path.abspath(args.data),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
