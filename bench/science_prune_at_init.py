"""Pruning at initialization against lottery tickets, short but real, on Fashion-MNIST.

    python bench/science_prune_at_init.py [--iterations=2000] [--trials=1]
        [--scores=snip,synflow,grasp,magnitude_at_init,random] [--ablations=shuffle,invert]
        [--rewind_iteration=0] [--data=DIR] [--root=DIR] [--figure=PATH]

Prints JSON (progress lines go to stderr). LeNet-300-100, the paper's rates
(20% of the hidden layers, 10% of the output layer per level), pooled under one
threshold over the hidden layers with --pruning=global (the default, as the
pruning-at-init papers prune) or layer by layer with --pruning=layerwise:

* ``comparison``: at level 15 (3.6% of the weights), the final test accuracy of
  the lottery ticket (iterative pruning, survivors reset to their initial
  values; with --rewind_iteration K also a trial rewound to K, as trial
  1000+N) and of pruning the same initialization with each score at init, then
  training once (experiments.prune_at_init), and of the ablations of
  Frankle et al. 2021 on the snip and synflow masks. Every run trains
  --iterations iterations with SGD at 0.1, batches of 60.
* ``layer_collapse``: no training: the surviving weights per layer after
  pruning the fresh initialization to 0.1% under one global threshold over
  all three layers, with each score (synflow in --synflow_rounds rounds).
* ``checks``: the claims of the papers as measured here.

The report of the experiment tree (prune_at_init.png among its figures) is
written beside it and, with --figure, copied there.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LEVEL = 15  # 0.8 ** 15 of the hidden layers, 0.9 ** 15 of the output: 3.6% overall.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--scores", default="snip,synflow,grasp,magnitude_at_init,random")
    parser.add_argument("--ablations", default="shuffle,reinit,invert")
    parser.add_argument("--rewind_iteration", type=int, default=0)
    parser.add_argument("--synflow_rounds", type=int, default=100)
    parser.add_argument("--pruning", default="global", help="the selection of every run, "
                        "lottery and at init: global (the papers' at init; the hidden "
                        "layers pooled, the output layer alone) or layerwise")
    parser.add_argument("--data", default=os.path.join(os.environ.get(
        "LOTTERY_TICKET_TEST_DATA", os.path.join(HERE, "..", "..", "shared", "data")),
        "fashion-mnist"), help="the Fashion-MNIST folder (default: "
        "$LOTTERY_TICKET_TEST_DATA/fashion-mnist, else ../shared/data/fashion-mnist)")
    parser.add_argument("--root", default=None, help="experiment root (default: a "
                        "temporary directory, kept)")
    parser.add_argument("--figure", default=None, help="copy prune_at_init.png here")
    args = parser.parse_args()

    from lottery_ticket.cli import runners
    runners.configure(threads=None)
    from lottery_ticket.analysis import metrics, reader, report
    from lottery_ticket.experiments import build, lottery, prune_at_init
    from lottery_ticket.experiments.config import ExperimentConfig
    from lottery_ticket.foundations import pruning

    root = args.root or tempfile.mkdtemp(prefix="science_prune_at_init_")
    config = ExperimentConfig().replace(
        dataset="fashion_mnist", data_location=os.path.abspath(args.data),
        training_len=("iterations", args.iterations), test_interval=args.iterations // 4,
        validate_interval=args.iterations // 4, levels=LEVEL, pruning=args.pruning,
        synflow_rounds=args.synflow_rounds)
    scores = [s for s in args.scores.split(",") if s]
    ablations = [a for a in args.ablations.split(",") if a]
    started = time.time()
    for seed in range(1, args.trials + 1):
        trial = os.path.join(root, f"trial{seed}")
        lottery.run_trial(trial, config, seed=seed, progress=False)
        if args.rewind_iteration:
            lottery.run_trial(os.path.join(root, f"trial{1000 + seed}"),
                              config.replace(rewind_iteration=args.rewind_iteration),
                              seed=seed, progress=False)
        for score in scores:
            runs = [None] + (ablations if score in ("snip", "synflow") else [])
            for ablation in runs:
                prune_at_init.run_prune_at_init(trial, config.replace(prune_scores=score),
                                                [LEVEL], seed=seed, ablation=ablation,
                                                progress=False)
    trained_seconds = time.time() - started

    records, _ = reader.load_experiment(root)
    records = metrics.label_series(records)
    accuracy = {}
    for row in metrics.summarize([metrics.run_metrics(r) for r in records]):
        if row["level"] == LEVEL:
            accuracy[row["experiment_name"]] = {
                "remaining_percent": round(100 * row["remaining"], 2), "runs": row["runs"],
                "final_test_accuracy_mean": round(row["final_test_accuracy_mean"], 4),
                "final_test_accuracy_min": round(row["final_test_accuracy_min"], 4),
                "final_test_accuracy_max": round(row["final_test_accuracy_max"], 4)}
    # With a rewound trial the lottery runs are two series, named by rewind_iteration.
    ticket = next(r["experiment_name"] for r in records
                  if r["base_name"] == "lottery" and int(r["trial"]) < 1000)
    dense = [r for r in records if r["experiment_name"] == ticket and r["level"] == 0]
    dense_accuracy = sum(metrics.run_metrics(r)["final_test_accuracy"] for r in dense) / len(
        dense)

    # Layer collapse: 0.1% of the fresh initialization under one global threshold.
    dataset = build.dataset(config, 1)
    model = build.model(config, None, None, seed=1)
    model.build(dataset.example_shape)
    initial, dense_masks = model.get_current_weights(), model.masks
    names = list(model.layer_names)
    context = pruning.Context(
        dense_masks, initial, initial=initial, order=names,
        model_fn=lambda w, m: build.model(config, w, m, seed=1), dataset_fn=lambda: dataset)
    collapse = {}
    for score in ["magnitude_at_init", "snip", "grasp", "synflow", "random"]:
        rule = pruning.PruningRule(
            {name: 0.999 for name in names}, selection="global", groups=[names],
            scores=score, seed=1 if score == "random" else None, order=names,
            score_config={"rounds": args.synflow_rounds} if score == "synflow" else None)
        masks = rule(dense_masks, initial, context=context)
        collapse[score] = {name: int(masks[name].sum()) for name in names}

    def mean(name):
        return accuracy.get(name, {}).get("final_test_accuracy_mean")

    lottery_accuracy = mean(ticket)
    checks = {
        "lottery_at_least_snip": lottery_accuracy >= mean("prune_at_init_snip"),
        "lottery_at_least_synflow": lottery_accuracy >= mean("prune_at_init_synflow"),
        "snip_beats_random_at_init": mean("prune_at_init_snip") > mean(
            "prune_at_init_random"),
        "synflow_beats_random_at_init": mean("prune_at_init_synflow") > mean(
            "prune_at_init_random"),
        "global_magnitude_at_init_empties_a_layer": min(
            collapse["magnitude_at_init"].values()) == 0,
        "synflow_keeps_every_layer": min(collapse["synflow"].values()) > 0,
    }
    figures_dir = os.path.join(root, "figures")
    report.report(root, figures_dir, title="LeNet-300-100 on Fashion-MNIST")
    if args.figure:
        shutil.copyfile(os.path.join(figures_dir, "prune_at_init.png"), args.figure)
    print(json.dumps({
        "setup": {"data": "fashion_mnist", "model": "LeNet-300-100",
                  "iterations_per_run": args.iterations, "trials": args.trials,
                  "level": LEVEL, "synflow_rounds": args.synflow_rounds,
                  "pruning": args.pruning,
                  "rewind_iteration": args.rewind_iteration, "root": root,
                  "train_seconds": round(trained_seconds, 1)},
        "dense_final_test_accuracy": round(dense_accuracy, 4),
        "comparison": accuracy, "layer_collapse_at_0.1_percent": collapse,
        "checks": checks}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
