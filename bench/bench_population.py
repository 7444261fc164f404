"""Throughput of populations (foundations.population) against one run at a time.

    python bench/bench_population.py [--data=DIR] [--lenet_ks=1,4,16,64]
        [--lenet_iterations=200] [--tiny_networks=1000] [--tiny_iterations=200]
        [--tiny_singles=20] [--jit=1] [--paths=1] [--threads=0]
        [--sparse=0] [--sparse_ks=4,16] [--sparse_densities=0.036,0.02,0.01]

Prints JSON. Every figure and ratio is measured in this run, on this machine:

* ``lenet``: for each K, K LeNet-300-100 networks (different seeds and batch
  orders) on Fashion-MNIST trained as one population, against single
  trainer.train runs of the same length (the single-run rate is that of one
  run after a warm-up run, i.e. with its compiled functions reused, as the
  levels of a trial run). Throughput is network-iterations per second,
  startup (tracing, files) included.
* ``tiny``: N networks 2-10-1 (one sigmoid output) on 2-D points, as one
  population, against `tiny_singles` single runs one after the other
  (extrapolated per network); then a second population of the same shape.

Each population's time is also given in parts (``population_parts``): building
the members' models, the training calls (tracing included) and the rest
(checks, loading the engine, writing every member's run directory).
* ``jit``: the population's steady step time with and without XLA
  (jit_compile) for LeNet (K=16) and the tiny networks.
* ``paths``: the steady step time of the batched path (dense models: one
  forward() of batched matmuls) against the vectorized_map path (forced) for
  the same populations, and which path and XLA default each architecture gets.

* ``sparse`` (``--sparse=1``): K LeNet-300-100s with random masks (hidden
  layers at each density, the output layer at the paper's half rate, each
  member its own masks) on the dense batched path (no XLA) against the
  sparse path (survivor vectors under XLA, stacked_sparse; forced at every
  density, ``default`` says which path a population takes by default): the steady step
  time, and the time of one evaluation of the test set (10,000 examples,
  all members) on the dense path, through the survivors, and through the
  dense stacked kernels of the sparse engine (what its evaluation does above
  stacked.SPARSE_EVALUATION_BELOW). ``--sparse_only=1`` runs this section alone.

The populations run with train_population's defaults (jit_compile=None: the
path's own XLA default) except in ``jit`` and ``paths``.

Evaluation is off in the timed runs (no test split for the tiny data, and
test_interval=None for LeNet) and summaries are not written, in both forms.
"""

import argparse
import copy
import functools
import json
import math
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lottery_ticket.datasets.dataset_mnist import DatasetMnist  # noqa: E402
from lottery_ticket.foundations import population, trainer  # noqa: E402
from lottery_ticket.foundations.training import batched, stacked  # noqa: E402
from lottery_ticket.foundations.dataset_base import DatasetBase  # noqa: E402
from lottery_ticket.foundations.model_base import (  # noqa: E402
    ModelBase, sigmoid_accuracy, sigmoid_cross_entropy)
from lottery_ticket.foundations.model_fc import ModelFc  # noqa: E402

LENET = {"layers": [(300, "relu"), (100, "relu"), (10, None)]}
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "shared", "data", "fashion-mnist")
SGD = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
QUIET = dict(save_summaries=False, progress=False)


class TinyNet(ModelBase):
    """2 inputs, 10 ReLU units, 1 sigmoid output (as a logit)."""

    loss = staticmethod(sigmoid_cross_entropy)
    accuracy = staticmethod(sigmoid_accuracy)

    def __init__(self, presets=None, masks=None, seed=None):
        super().__init__(presets, masks, seed, name="tiny_net")

    def trace_key(self):
        return ("2-10-1",)

    def forward(self, inputs, training=False):
        hidden = self.dense_layer("hidden", inputs, 10, activation="relu")
        return self.dense_layer("output", hidden, 1)


def circle_data(seed: int = 0) -> DatasetBase:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2000, 2)).astype(np.float32)
    y = (np.sum(x ** 2, axis=1) < 0.5).astype(np.float32)
    return DatasetBase((x, y), 50, train_order_seed=seed)


def reordered(dataset: DatasetBase, seed: int) -> DatasetBase:
    other = copy.copy(dataset)
    other.train_order_seed = seed
    return other


def time_population(datasets, models, iterations, jit_compile=None, **params) -> float:
    return time_population_parts(datasets, models, iterations, jit_compile, **params)["total"]


def time_population_parts(datasets, models, iterations, jit_compile=None, **params) -> dict:
    """Seconds of one population, in all and in parts: building the members'
    models (their variables and initial values), the training calls (tracing
    included: done.json's training_seconds) and the rest (checks, the engine's
    loading, every member's run directory)."""
    with tempfile.TemporaryDirectory() as directory:
        dirs = [os.path.join(directory, str(k)) for k in range(len(models))]
        start = time.perf_counter()
        for model in models:
            model.build(datasets[0].example_shape)
        built = time.perf_counter()
        results = population.train_population(
            datasets, models, SGD, ("iterations", iterations), dirs, jit_compile=jit_compile,
            **dict(QUIET, **params))
        end = time.perf_counter()
    steps = results[0].record["training_seconds"]
    return {"total": end - start, "build_models": built - start, "training_calls": steps,
            "rest": end - built - steps}


def _rounded(parts: dict) -> dict:
    return {f"{key}_seconds": round(value, 3) for key, value in parts.items()}


def time_singles(datasets, models, iterations, **params) -> list:
    seconds = []
    with tempfile.TemporaryDirectory() as directory:
        for k, (dataset, model) in enumerate(zip(datasets, models)):
            start = time.perf_counter()
            trainer.train(dataset, model, SGD, ("iterations", iterations),
                          os.path.join(directory, str(k)), **dict(QUIET, **params))
            seconds.append(time.perf_counter() - start)
    return seconds


def steady_step_seconds(datasets, models, iterations, jit_compile) -> float:
    """Seconds per population step once compiled: the training calls of a second
    population of the same shape (which reuses the compiled program, and under
    XLA the executable for that many steps), as its engine timed them. Setup
    (building K models, K run directories) is left out: for many members it
    varies by more than the steps take."""
    time_population(datasets, models, iterations, jit_compile, test_interval=None)
    time_population(datasets, [copy.deepcopy(m) for m in models], iterations, jit_compile,
                    test_interval=None)
    engine = stacked.ENGINES.engines(datasets[0])[-1]
    seconds, steps = engine.steady_timing()
    assert steps == iterations, (steps, iterations)
    return seconds / steps


def bench_lenet(dataset, ks, iterations) -> dict:
    # One single run warms the trainer's compiled functions; the second is timed.
    singles = time_singles([dataset, reordered(dataset, 1)],
                           [ModelFc(LENET, seed=0), ModelFc(LENET, seed=1)], iterations,
                           test_interval=None)
    single_rate = iterations / singles[1]
    rows = []
    for k in ks:
        models = [ModelFc(LENET, seed=s) for s in range(k)]
        datasets = [reordered(dataset, s) for s in range(k)]
        parts = time_population_parts(datasets, models, iterations, test_interval=None)
        seconds = parts["total"]
        rate = k * iterations / seconds
        rows.append({"K": k, "population_seconds": round(seconds, 3),
                     "population_parts": _rounded(parts),
                     "network_iterations_per_second": round(rate, 1),
                     "single_run_iterations_per_second": round(single_rate, 1),
                     "speedup_per_network": round(rate / single_rate, 3),
                     "K_single_runs_seconds_estimate": round(k * singles[1], 3)})
    return {"iterations": iterations, "single_run_seconds": [round(s, 3) for s in singles],
            "rows": rows}


def bench_tiny(networks, iterations, singles_count) -> dict:
    dataset = circle_data()
    single_seconds = time_singles(
        [reordered(dataset, s) for s in range(singles_count)],
        [TinyNet(seed=s) for s in range(singles_count)], iterations, test_interval=None)
    per_single = float(np.mean(single_seconds[1:] if singles_count > 1 else single_seconds))
    models = [TinyNet(seed=s) for s in range(networks)]
    datasets = [reordered(dataset, s) for s in range(networks)]
    parts = time_population_parts(datasets, models, iterations, test_interval=None)
    seconds = parts["total"]
    # A second population of the same shape (compiled functions reused, as in the
    # levels of lottery trials after the first).
    again = time_population_parts([reordered(dataset, s) for s in range(networks)],
                                  [TinyNet(seed=s) for s in range(networks)], iterations,
                                  test_interval=None)
    return {"networks": networks, "iterations": iterations,
            "population_seconds": round(seconds, 3),
            "population_parts": _rounded(parts),
            "second_population_parts": _rounded(again),
            "population_seconds_per_network": round(seconds / networks, 5),
            "single_run_seconds_mean": round(per_single, 4),
            "single_run_seconds_first": round(single_seconds[0], 4),
            "one_at_a_time_seconds_estimate": round(per_single * networks, 2),
            "speedup_per_network": round(per_single * networks / seconds, 1)}


def _cases(lenet_data) -> dict:
    cases = {"lenet_K16": ([reordered(lenet_data, s) for s in range(16)],
                           lambda: [ModelFc(LENET, seed=s) for s in range(16)])}
    tiny = circle_data()
    cases["tiny_K1000"] = ([reordered(tiny, s) for s in range(1000)],
                           lambda: [TinyNet(seed=s) for s in range(1000)])
    return cases


def bench_jit(lenet_data, iterations) -> dict:
    result = {}
    for name, (datasets, make) in _cases(lenet_data).items():
        row = {}
        for jit in (False, True):
            start = time.perf_counter()
            time_population(datasets, make(), 1, jit, test_interval=None)
            first = time.perf_counter() - start
            row[f"jit_{jit}"] = {"first_1_iteration_run_seconds": round(first, 3),
                                 "step_ms": round(1e3 * steady_step_seconds(
                                     datasets, make(), iterations, jit), 3)}
        result[name] = row
    return result


def bench_paths(lenet_data, iterations) -> dict:
    result = {}
    for name, (datasets, make) in _cases(lenet_data).items():
        model = make()[0].build(datasets[0].example_shape)
        row = {"batched_reason": population.batched_reason(model, datasets[0].example_shape),
               "auto_jit_batched": stacked.population_xla(True)}
        together = steady_step_seconds(datasets, make(), iterations, None)
        with batched.vectorized_only("forced by the benchmark"):
            vectorized = steady_step_seconds(datasets, make(), iterations, False)
        row.update({"batched_step_ms": round(1e3 * together, 3),
                    "vectorized_map_step_ms": round(1e3 * vectorized, 3),
                    "batched_speedup": round(vectorized / together, 2)})
        result[name] = row
    return result


def random_masks(density: float, seed: int) -> dict:
    """LeNet-300-100 masks: hidden layers at `density`, the output layer pruned at
    half their rate (as the paper prunes it: 10% a level against 20%)."""
    rng = np.random.default_rng(seed)
    levels = math.log(density) / math.log(0.8) if density < 1 else 0
    return {name: (rng.random(shape) < fraction).astype(np.float32)
            for name, shape, fraction in (("layer0", (784, 300), density),
                                          ("layer1", (300, 100), density),
                                          ("layer2", (100, 10), 0.9 ** levels))}


def evaluation_ms(engine, repeats: int = 3) -> dict:
    """The first (compiling) and the best later time of engine.evaluate('test')."""
    start = time.perf_counter()
    engine.evaluate("test")
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.evaluate("test")
        times.append(time.perf_counter() - start)
    return {"first_ms": round(1e3 * first, 1), "ms": round(1e3 * min(times), 2)}


# The sparse legs' threshold: above the densities measured (not the output layer's).
FORCED_SPARSE_BELOW = 0.05


def bench_sparse(lenet_data, ks, densities, iterations) -> dict:
    rows = []
    below, evaluation_below = stacked.SPARSE_BELOW, stacked.SPARSE_EVALUATION_BELOW
    try:
        for k in ks:
            for density in densities:
                # Data sets of their own (engines are kept per data set): a level
                # would otherwise reuse the engine of a denser one (sparse_fits),
                # as a lottery population's levels do, with its padded sizes.
                datasets = [reordered(lenet_data, s) for s in range(k)]
                def make():
                    return [ModelFc(LENET, seed=s, masks=random_masks(density, s))
                            for s in range(k)]
                row = {"K": k, "density": density}
                stacked.SPARSE_BELOW = 0.0
                row["dense_step_ms"] = round(1e3 * steady_step_seconds(
                    datasets, make(), iterations, None), 3)
                row["dense_evaluation"] = evaluation_ms(stacked.ENGINES.engines(datasets[0])[-1])
                # Sparse at every density here (the default threshold is lower than
                # some); "default" says which path train_population takes by default.
                stacked.SPARSE_BELOW = FORCED_SPARSE_BELOW
                row["default"] = "sparse" if density < below else "dense"
                for name, evaluation in (("sparse", 1.0), ("sparse_dense", 0.0)):
                    stacked.SPARSE_EVALUATION_BELOW = evaluation
                    step = steady_step_seconds(datasets, make(), iterations, None)
                    engine = stacked.ENGINES.engines(datasets[0])[-1]
                    row["sparse_layers"] = list(engine.sparse_layers)
                    if name == "sparse":
                        row["sparse_step_ms"] = round(1e3 * step, 3)
                    row[f"{name}_evaluation"] = evaluation_ms(engine)
                row["step_speedup"] = round(row["dense_step_ms"] / row["sparse_step_ms"], 2)
                for name in ("sparse", "sparse_dense"):
                    row[f"{name}_evaluation_speedup"] = round(
                        row["dense_evaluation"]["ms"] / row[f"{name}_evaluation"]["ms"], 2)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        stacked.SPARSE_BELOW, stacked.SPARSE_EVALUATION_BELOW = below, evaluation_below
    return {"iterations": iterations, "sparse_chunk": stacked.SPARSE_CHUNK, "rows": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--lenet_ks", default="1,4,16,64")
    parser.add_argument("--lenet_iterations", type=int, default=200)
    parser.add_argument("--tiny_networks", type=int, default=1000)
    parser.add_argument("--tiny_iterations", type=int, default=200)
    parser.add_argument("--tiny_singles", type=int, default=20)
    parser.add_argument("--jit", type=int, default=1, help="1: also compare jit_compile.")
    parser.add_argument("--jit_iterations", type=int, default=50)
    parser.add_argument("--paths", type=int, default=1,
                        help="1: also compare the batched and vectorized_map paths.")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--sparse", type=int, default=0,
                        help="1: also compare the dense and sparse batched paths.")
    parser.add_argument("--sparse_only", type=int, default=0,
                        help="1: only the sparse section.")
    parser.add_argument("--sparse_ks", default="4,16")
    parser.add_argument("--sparse_densities", default="0.036,0.02,0.01")
    parser.add_argument("--sparse_iterations", type=int, default=100)
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    lenet_data = DatasetMnist(args.data, train_order_seed=0)
    started = time.perf_counter()
    report = {"machine": {"python": platform.python_version(), "tensorflow": tf.__version__,
                          "cpus": os.cpu_count(),
                          "load_average_before": [round(x, 2) for x in os.getloadavg()]}}
    if not args.sparse_only:
        report["lenet"] = bench_lenet(lenet_data, [int(k) for k in args.lenet_ks.split(",")],
                                      args.lenet_iterations)
        report["tiny"] = bench_tiny(args.tiny_networks, args.tiny_iterations, args.tiny_singles)
        if args.jit:
            report["jit"] = bench_jit(lenet_data, args.jit_iterations)
        if args.paths:
            report["paths"] = bench_paths(lenet_data, args.jit_iterations)
    if args.sparse or args.sparse_only:
        report["sparse"] = bench_sparse(lenet_data, [int(k) for k in args.sparse_ks.split(",")],
                                        [float(d) for d in args.sparse_densities.split(",")],
                                        args.sparse_iterations)
    report["bench_seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
