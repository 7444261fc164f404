"""A whole lottery trial, and the speed of each pruned level, on LeNet-300-100.

    python bench/bench_trial.py [--iterations=1000] [--levels=30] [--data=DIR]
        [--sections=trial,levels] [--baseline] [--level_iterations=2000]
        [--threads=N] [--inter_threads=N] [--overlap=auto|on|off|both]
        [--densities=1,0.036]

Prints JSON (progress lines go to stderr).

* ``trial``: runs one lottery trial (level 0 and --levels pruned levels,
  --iterations per level, test and validation evaluation every 100) through
  experiments.lottery.run_trial with the default settings (XLA auto, sparse
  layers below 5%), and reports per level: the weights remaining, the
  iterations per second of its training loop (evaluation included), and its
  start-up (everything between the previous level's done.json and this level's
  first iteration: pruning, model, files, finding compiled functions), read
  from the run files, and the time its loop spent tracing and compiling (a
  level whose sparse layout is new compiles again; done.json's
  compile_seconds), and how much of each iteration went to training steps and
  to evaluation (done.json's training_seconds and evaluation_seconds). With
  --baseline the same trial runs again with xla=off and sparse_below=0 (the
  plain compiled loop) and the ratios are given. From the measured rates it
  projects a 31 x 50,000 trial. In every section, runs choose which compiled
  sparse programs to reuse as 50,000-iteration levels would (see
  foundations/training/sparse.py, sparse_fits).
* ``overlap``: overlap_evaluation off and on alternated, --repeats runs each
  of --level_iterations at each of --densities: median times and their ratio.
* ``levels``: per-iteration time of one level (evaluation every 100
  included) at 100%, 80%, 21%, 3.6% and 1% of the hidden layers' weights
  (output layer pruned at half the rate, as in the paper; random masks), each
  with XLA off and with the defaults, after a warm-up run of the same shape
  so that tracing is not counted; the time of training steps and of
  evaluations per iteration; ratios against the dense level of the same
  setting and against the dense plain level. The machine's load average is
  printed with the figures: on a shared machine compare ratios within a run.

TensorFlow's threads default to what the runners choose for LeNet (one on a
multi-core CPU, with the evaluation overlapped on another core; see
cli.runners.default_threads); --threads=0 leaves TensorFlow's own default.

Fashion-MNIST stands in for MNIST (same shapes); the data defaults to
../shared/data/fashion-mnist beside the repository.
"""

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import sys
import tempfile
import time
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lottery_ticket.cli import runners  # noqa: E402
from lottery_ticket.datasets.dataset_mnist import DatasetMnist  # noqa: E402
from lottery_ticket.experiments import lottery  # noqa: E402
from lottery_ticket.experiments.config import ExperimentConfig  # noqa: E402
from lottery_ticket.foundations import paths, runs, trainer  # noqa: E402
from lottery_ticket.foundations.model_fc import ModelFc  # noqa: E402
from lottery_ticket.foundations.training import overlap, sparse  # noqa: E402

LENET = {"layers": [(300, "relu"), (100, "relu"), (10, None)]}
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "shared", "data", "fashion-mnist")
DENSITIES = (1.0, 0.8, 0.21, 0.036, 0.01)
FULL_TRIAL = (31, 50000)  # levels, iterations per level: the paper's LeNet trial


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trial_config(data: str, iterations: int, levels: int, **training) -> ExperimentConfig:
    return ExperimentConfig().replace(
        dataset="fashion_mnist", data_location=data, levels=levels,
        training_len=("iterations", iterations), **training)


def level_figures(trial_dir: str, levels: int) -> list:
    """Per level: remaining weights, loop rate and start-up, from the run files."""
    figures, previous_end = [], None
    for level in range(levels + 1):
        run_dir = paths.run(trial_dir, level, lottery.EXPERIMENT_NAME)
        record = runs.read_done(run_dir)
        end = os.path.getmtime(os.path.join(run_dir, runs.DONE_FILENAME))
        counts = record["mask_counts"]
        kept = sum(kept for kept, _ in counts.values())
        total = sum(size for _, size in counts.values())
        trained = record["iterations"] - record.get("start_iteration", 0)
        compile_seconds = record.get("compile_seconds") or 0.0
        figures.append({
            "level": level,
            "remaining_percent": round(100 * kept / total, 2),
            "iterations_per_second": round(record["iterations_per_second"], 1),
            "ms_per_iteration": round(1000 / record["iterations_per_second"], 3),
            "ms_per_iteration_without_compiling": round(
                1000 * (record["seconds"] - compile_seconds) / trained, 3),
            "startup_seconds": (None if previous_end is None
                                else round(end - record["seconds"] - previous_end, 3)),
            # Inside the loop's time: tracing and XLA compilation of this level.
            "compile_seconds": record.get("compile_seconds"),
            # The loop's time split: training steps and evaluations (each with
            # its compiling), per trained iteration.
            "training_ms_per_iteration": _per_iteration(record, "training_seconds", trained),
            "evaluation_ms_per_iteration": _per_iteration(record, "evaluation_seconds",
                                                          trained),
            "sparse_layers": record.get("xla", {}).get("sparse_layers", []),
            "overlap_evaluation": bool(record.get("overlap_evaluation", False)),
            "test_accuracy": round(record["final"]["test"]["accuracy"], 4),
        })
        previous_end = end
    return figures


def _per_iteration(record: dict, key: str, iterations: int):
    seconds = record.get(key)
    return None if seconds is None else round(1000 * seconds / iterations, 3)


@contextlib.contextmanager
def as_long_as_a_full_level(iterations: int) -> Iterator[None]:
    """Runs of `iterations` choose their compiled sparse programs as runs of a full
    level's 50,000 would.

    A run reuses a padded sparse program only while the padding costs less than
    a compile over the run's length (sparse.sparse_fits): scaling the compile's
    price by this run's share of 50,000 iterations makes a short run train on
    the program a full level would, so that the rates measured are those.
    """
    compile_seconds = sparse.SPARSE_COMPILE_SECONDS
    sparse.SPARSE_COMPILE_SECONDS = compile_seconds * iterations / FULL_TRIAL[1]
    try:
        yield
    finally:
        sparse.SPARSE_COMPILE_SECONDS = compile_seconds


def run_trial_section(data: str, iterations: int, levels: int, **training) -> dict:
    config = trial_config(data, iterations, levels, **training)
    with as_long_as_a_full_level(iterations), tempfile.TemporaryDirectory() as directory:
        started = time.time()
        lottery.run_trial(directory, config, seed=0, progress=False)
        seconds = time.time() - started
        figures = level_figures(directory, levels)
    startups = [f["startup_seconds"] for f in figures[1:]]
    compiles = [f["compile_seconds"] or 0.0 for f in figures[1:]]
    seconds_at_full_length = full_length_seconds(figures, iterations, FULL_TRIAL[1],
                                                 config["test_interval"])
    seconds_at_full_length += [seconds_at_full_length[-1]] * (FULL_TRIAL[0] - len(figures))
    projected = (sum(seconds_at_full_length[:FULL_TRIAL[0]])
                 + float(np.median(startups or [0])) * (FULL_TRIAL[0] - 1))
    # The plain scaling of each level's rate, for comparison: it counts the two
    # evaluations a level makes in place (first and last) once per 1,000 iterations.
    per_iteration = [f["ms_per_iteration_without_compiling"] / 1000 for f in figures]
    per_iteration += [per_iteration[-1]] * (FULL_TRIAL[0] - len(per_iteration))
    scaled = (sum(FULL_TRIAL[1] * seconds for seconds in per_iteration[:FULL_TRIAL[0]])
              + sum(f["compile_seconds"] or 0.0 for f in figures)
              + float(np.median(startups or [0])) * (FULL_TRIAL[0] - 1))
    return {"settings": {name: config[name]
                         for name in ("xla", "sparse_below", "overlap_evaluation")},
            "wall_seconds": round(seconds, 1),
            "startup_seconds_median_after_level_0": round(float(np.median(startups)), 3)
            if startups else None,
            "startup_seconds_max_after_level_0": max(startups) if startups else None,
            "compile_seconds_total_after_level_0": round(sum(compiles), 2),
            "levels_that_compiled_after_level_0": sum(1 for c in compiles if c > 0.05),
            "projected_31x50000_minutes": round(projected / 60, 1),
            "projected_31x50000_minutes_plainly_scaled": round(scaled / 60, 1),
            "levels": figures}


def full_length_seconds(figures: list, iterations: int, full: int, interval: int) -> list:
    """Each level's seconds at `full` iterations, from its run of `iterations`
    (evaluating every `interval`).

    A level's time is its evaluations made in place (every boundary, or with
    the overlap only the first and the last), a rate per iteration for the
    rest (training, and the overlapped evaluations' waits), and its compiling:
    T(n) = in_place(n) * t_eval + n * rate + compile. t_eval, one boundary's
    evaluation, is the level's evaluation time per boundary; a level that
    compiled takes the nearest level's that did not (its evaluation time holds
    its compiling). Checked with the overlap on a 2-core CPU: a dense level's
    1,000 iterations predicted 5.29 s at 5,000, which took 5.39 s (plain
    scaling: 5.96 s); at 3.6% of the weights 3.64 s, which took 3.61 s (plain
    scaling: 3.85 s).
    """
    boundaries = iterations // interval + 1
    per_boundary = [f["evaluation_ms_per_iteration"] * iterations / 1000 / boundaries
                    if f["evaluation_ms_per_iteration"] is not None else 0.0
                    for f in figures]
    steady = [(f["compile_seconds"] or 0.0) < 0.05 for f in figures]
    result = []
    for index, figure in enumerate(figures):
        candidates = [i for i in range(len(figures)) if steady[i]] or [index]
        nearest = min(candidates, key=lambda i: (abs(i - index), -i))
        t_eval = per_boundary[index] if steady[index] else per_boundary[nearest]
        in_place = 2 if figure["overlap_evaluation"] else None
        in_place_now = in_place or boundaries
        in_place_full = in_place or full // interval + 1
        loop = figure["ms_per_iteration_without_compiling"] * iterations / 1000
        rate = max(loop - in_place_now * t_eval, 0.0) / iterations
        result.append(in_place_full * t_eval + full * rate + (figure["compile_seconds"] or 0.0))
    return result


def random_masks(density: float, seed: int = 0) -> dict:
    """Hidden layers at `density`, the output layer pruned at half their rate."""
    rng = np.random.default_rng(seed)
    steps = math.log(density) / math.log(0.8) if density < 1 else 0
    output_density = 0.9 ** steps
    return {name: (rng.random(shape) < fraction).astype(np.float32)
            for name, shape, fraction in (("layer0", (784, 300), density),
                                          ("layer1", (300, 100), density),
                                          ("layer2", (100, 10), output_density))}


def time_level(dataset, density: float, iterations: int, xla: str, sparse_below: float,
               overlap: str = "off") -> dict:
    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
    result = None
    for repeat in range(2):  # the first traces and compiles; the second is timed
        with as_long_as_a_full_level(iterations), tempfile.TemporaryDirectory() as directory:
            model = ModelFc(LENET, masks=random_masks(density), seed=repeat)
            started, cpu_started = time.time(), time.process_time()
            result = trainer.train(dataset, model, sgd, ("iterations", iterations), directory,
                                   test_interval=100, validate_interval=100,
                                   progress=False, save_summaries=False, xla=xla,
                                   sparse_below=sparse_below, overlap_evaluation=overlap)
            seconds = time.time() - started
            cpu_seconds = time.process_time() - cpu_started
    return {"ms_per_iteration": round(1000 * seconds / iterations, 3),
            # CPU time of all the process's threads: the work, whatever the load; on
            # an idle machine an overlapped run takes about the larger of its
            # training and evaluation shares of it.
            "cpu_ms_per_iteration": round(1000 * cpu_seconds / iterations, 3),
            "loop_ms_per_iteration": round(1000 / result.record["iterations_per_second"], 3),
            "training_ms_per_iteration": _per_iteration(result.record, "training_seconds",
                                                        iterations),
            "evaluation_ms_per_iteration": _per_iteration(result.record,
                                                          "evaluation_seconds", iterations),
            "evaluation_wait_ms_per_iteration": _per_iteration(
                result.record, "evaluation_wait_seconds", iterations),
            "overlap_evaluation": result.record.get("overlap_evaluation", False),
            "sparse_layers": result.record["xla"]["sparse_layers"],
            "xla_training": result.record["xla"]["training"]}


def levels_section(data: str, iterations: int, densities=DENSITIES) -> dict:
    dataset = DatasetMnist(data, train_order_seed=0, validation_size=5000)
    cases = {"plain (xla off)": ("off", 0.0, "off"),
             "defaults, overlap off": ("auto", trainer.SPARSE_BELOW, "off"),
             "defaults, overlap on": ("auto", trainer.SPARSE_BELOW, "on")}
    table = {label: {} for label in cases}
    # Interleaved per density, so that the settings compared see the same load.
    for density in densities:
        for label, (xla, sparse_below, overlap) in cases.items():
            log(f"levels: {label}, {density:.1%} of the weights")
            table[label][f"{density:.1%}"] = time_level(dataset, density, iterations, xla,
                                                        sparse_below, overlap)
    first = f"{densities[0]:.1%}"
    for rows in table.values():
        dense = rows[first]["ms_per_iteration"]
        for row in rows.values():
            row["time_vs_dense_same_setting"] = round(row["ms_per_iteration"] / dense, 3)
    plain_dense = table["plain (xla off)"][first]["ms_per_iteration"]
    for rows in table.values():
        for row in rows.values():
            row["time_vs_plain_dense"] = round(row["ms_per_iteration"] / plain_dense, 3)
    overlap_ratio = {
        key: round(table["defaults, overlap on"][key]["ms_per_iteration"]
                   / table["defaults, overlap off"][key]["ms_per_iteration"], 3)
        for key in table["defaults, overlap off"]}
    return {"iterations_per_level": iterations,
            "evaluation": "test (10,000) and validation (5,000) every 100 iterations",
            "rates": table,
            "overlap_on_vs_off_time": overlap_ratio}


def overlap_section(data: str, iterations: int, repeats: int, densities=(1.0,)) -> dict:
    """Overlap off and on, alternated run by run (so that both see the same load
    over time), at the defaults otherwise: the median time per iteration of each
    and the ratio of the medians, per density."""
    dataset = DatasetMnist(data, train_order_seed=0, validation_size=5000)
    table = {}
    for density in densities:
        times = {"off": [], "on": []}
        cpu = {"off": [], "on": []}
        waits = []
        for repeat in range(repeats):
            for setting in ("off", "on"):
                log(f"overlap: {density:.1%} of the weights, {setting}, repeat {repeat + 1}")
                row = time_level(dataset, density, iterations, "auto", trainer.SPARSE_BELOW,
                                 setting)
                times[setting].append(row["ms_per_iteration"])
                cpu[setting].append(row["cpu_ms_per_iteration"])
                if setting == "on":
                    waits.append(row["evaluation_wait_ms_per_iteration"])
        medians = {setting: float(np.median(values)) for setting, values in times.items()}
        table[f"{density:.1%}"] = {
            "ms_per_iteration_off": times["off"], "ms_per_iteration_on": times["on"],
            "median_off": round(medians["off"], 3), "median_on": round(medians["on"], 3),
            "median_wait_ms_per_iteration_on": round(float(np.median(waits)), 3),
            "median_cpu_ms_per_iteration_off": round(float(np.median(cpu["off"])), 3),
            "median_cpu_ms_per_iteration_on": round(float(np.median(cpu["on"])), 3),
            "on_vs_off_median_time": round(medians["on"] / medians["off"], 3)}
    return {"iterations_per_run": iterations, "repeats": repeats, "rates": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000,
                        help="iterations per level of the trial")
    parser.add_argument("--levels", type=int, default=30,
                        help="pruned levels after level 0 (30: the paper's 31 levels)")
    parser.add_argument("--level_iterations", type=int, default=2000,
                        help="iterations of each timed level in the levels section")
    parser.add_argument("--densities", default=",".join(str(d) for d in DENSITIES),
                        help="the levels section's fractions of the weights kept")
    parser.add_argument("--sections", default="trial,levels",
                        help="trial, levels and/or overlap (off and on alternated, "
                        "--repeats times each, at --densities)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs of each setting in the overlap section")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the trial with xla=off, sparse_below=0")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op threads (default: what the runners use "
                        "for LeNet, one on a multi-core CPU; 0: TensorFlow's default, "
                        "every core)")
    parser.add_argument("--inter_threads", type=int, default=None,
                        help="TensorFlow inter-op threads (default: as --threads)")
    parser.add_argument("--overlap", default="auto", choices=("auto", "on", "off", "both"),
                        help="the trial's overlap_evaluation ('both': once each)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    args = parser.parse_args()
    data = os.path.abspath(args.data)
    if not os.path.isdir(data):
        sys.exit(f"no Fashion-MNIST at {data}: pass --data=DIR (the directory of its four "
                 "idx files).")
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(sections) - {"trial", "levels", "overlap"})
    if unknown:
        sys.exit(f"unknown sections {unknown}: choose from trial, levels, overlap.")
    if args.threads is None:
        # As a runner would choose for this network (cli.runners.configure).
        args.threads = runners.default_threads(
            "fc", os.environ, bool(tf.config.list_physical_devices("GPU")),
            overlap.cores()) or 0
    inter = args.threads if args.inter_threads is None else args.inter_threads
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    output = {
        "benchmark": "LeNet-300-100 lottery trial on Fashion-MNIST, batch 60, SGD 0.1",
        "device": "GPU" if trainer.gpu_present() else "CPU",
        "cpu_count": os.cpu_count(),
        "tensorflow_threads": {"intra_op": args.threads or "default",
                               "inter_op": inter or "default"},
        "overlap_evaluation_auto_means": trainer.resolve_overlap("auto"),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "data": data,
        # 1, 5 and 15-minute load averages: on a shared machine the ratios within a
        # run mean more than the absolute times.
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    densities = tuple(float(d) for d in args.densities.split(",") if d.strip())
    if "overlap" in sections:
        output["overlap"] = overlap_section(data, args.level_iterations, args.repeats,
                                            densities)
        output["load_average_after_overlap"] = [round(v, 2) for v in os.getloadavg()]
    if "levels" in sections:
        output["levels"] = levels_section(data, args.level_iterations, densities)
        output["load_average_after_levels"] = [round(v, 2) for v in os.getloadavg()]
    if "trial" in sections:
        settings = ("off", "on") if args.overlap == "both" else (args.overlap,)
        for setting in settings:
            log(f"trial: {args.levels + 1} levels x {args.iterations} iterations (defaults, "
                f"overlap_evaluation={setting})")
            key = "trial" if len(settings) == 1 else f"trial_overlap_{setting}"
            output[key] = run_trial_section(data, args.iterations, args.levels,
                                            overlap_evaluation=setting)
        if len(settings) == 2:
            output["trial_overlap_on_vs_off_wall"] = round(
                output["trial_overlap_on"]["wall_seconds"]
                / output["trial_overlap_off"]["wall_seconds"], 3)
        if args.baseline:
            log("trial: the same with xla=off, sparse_below=0")
            baseline = run_trial_section(data, args.iterations, args.levels, xla="off",
                                         sparse_below=0.0, overlap_evaluation="off")
            output["trial_baseline"] = baseline
            reference = output.get("trial") or output["trial_overlap_on"]
            output["trial_speedup_vs_baseline"] = round(
                baseline["wall_seconds"] / reference["wall_seconds"], 2)
    output["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    json.dump(output, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
