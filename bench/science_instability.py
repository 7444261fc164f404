"""Instability analysis on Fashion-MNIST with LeNet-300-100: short, but real data.

    python bench/science_instability.py [--iterations=3000] [--ks=0,100,500,2000] \
        [--ticket_level=5] [--root=DIR] [--data=DIR/fashion-mnist]

Trains one lottery trial (the family's defaults: SGD at learning rate 0.1,
batches of 60) for --iterations per level up to --ticket_level, then the
instability analysis (experiments.instability) of the dense network (level 0)
and of the ticket at --ticket_level from each k, and prints one JSON object:
per level and k the weights remaining, the instability (error barrier) and the
two copies' test errors; the figure goes to {root}/instability.png. Rerunning
with the same --root reads everything back.
"""

import argparse
import json
import os
import tempfile
import time

from lottery_ticket.analysis import figures, science
from lottery_ticket.experiments import instability, lottery
from lottery_ticket.mnist_fc import constants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(
        os.environ.get("LOTTERY_TICKET_TEST_DATA", "data"), "fashion-mnist"))
    parser.add_argument("--root", default="")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--ks", default="0,100,500,2000")
    parser.add_argument("--ticket_level", type=int, default=5)
    parser.add_argument("--points", type=int, default=30)
    parser.add_argument("--trials", type=int, default=1)
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="science_instability_")
    ks = instability.parse_ints(args.ks, "ks")
    config = constants.DEFAULT.replace(
        dataset="fashion_mnist", data_location=args.data,
        training_len=("iterations", args.iterations), validation_size=0,
        test_interval=args.iterations // 3, levels=args.ticket_level)
    started = time.time()
    for trial in range(1, args.trials + 1):
        trial_dir = os.path.join(root, f"trial{trial}")
        lottery.run_trial(trial_dir, config, seed=trial, progress=False)
        for level in sorted({0, args.ticket_level}):
            for k in ks:
                instability.run_instability(trial_dir, level, k,
                                            interpolation_points=args.points,
                                            seeds=(1, 2), progress=False)
    rows = science.read_instability(root)
    figures.instability_figure(rows, path=os.path.join(root, "instability.png"),
                               title="LeNet-300-100 on Fashion-MNIST: instability")
    summary = science.mean_by(rows, ("level", "k"),
                              ("remaining", "instability", "error_a", "error_b"))
    print(json.dumps({
        "root": root, "iterations": args.iterations, "optimizer": config["optimizer"],
        "learning_rate": config["learning_rate"], "trials": args.trials,
        "interpolation_points": args.points, "seconds": round(time.time() - started, 1),
        "results": [{key: (round(value, 4) if isinstance(value, float) else value)
                     for key, value in row.items() if not key.endswith(("_min", "_max"))}
                    for row in summary]}, indent=1))


if __name__ == "__main__":
    main()
