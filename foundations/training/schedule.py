"""How long a run trains and where the compiled loop hands control back to Python."""

from typing import Optional, Sequence

import numpy as np

from lottery_ticket.foundations.dataset_base import DatasetBase

# Without any evaluation interval, the loop still returns to Python this often
# so that progress can be reported.
DEFAULT_CHUNK = 1000


def training_iterations(training_len: Sequence, dataset: DatasetBase) -> int:
    """Number of iterations that ('iterations', N) or ('epochs', N) means.

    Raises:
      ValueError: `training_len` is not such a pair with a positive whole N.
    """
    if (not isinstance(training_len, (tuple, list)) or len(training_len) != 2
            or training_len[0] not in ("iterations", "epochs")):
        raise ValueError(
            f"training_len must be ('iterations', N) or ('epochs', N), got "
            f"{training_len!r}.")
    unit, amount = training_len
    if int(amount) != amount or int(amount) < 1:
        raise ValueError(f"training_len {training_len!r}: N must be a positive integer.")
    if unit == "iterations":
        return int(amount)
    return int(amount) * dataset.iterations_per_epoch


def check_iterations(total: int, start_iteration: int = 0,
                     snapshot_iterations: Sequence[int] = ()) -> None:
    """Raises ValueError unless 0 <= start_iteration < total and every snapshot
    iteration lies in (start_iteration, total]."""
    if int(start_iteration) != start_iteration or not 0 <= start_iteration < total:
        raise ValueError(
            f"start_iteration is {start_iteration!r}, but training runs to iteration "
            f"{total}: it must be a whole number from 0 to {total - 1} (a rewound run "
            "starts at the rewind iteration, which must come before the end).")
    for iteration in snapshot_iterations:
        if int(iteration) != iteration or not start_iteration < iteration <= total:
            raise ValueError(
                f"snapshot iteration {iteration!r} is not between start_iteration "
                f"{start_iteration} (exclusive) and the last iteration {total}: weights "
                "can only be saved at an iteration this run trains to.")


def boundaries(total: int, intervals: Sequence[Optional[int]], start: int = 0,
               snapshots: Sequence[int] = ()) -> list:
    """Iterations after `start` at which the compiled loop hands control back to
    Python: multiples of each interval, each snapshot iteration and `total`.

    Raises:
      ValueError: an interval is below 1.
    """
    points = {total} | {int(k) for k in snapshots}
    given = [int(i) for i in intervals if i]
    for interval in given or [DEFAULT_CHUNK]:
        if interval < 1:
            raise ValueError(f"evaluation intervals must be positive, got {interval}.")
        points.update(range(interval, total, interval))
    return sorted(point for point in points if point > start)


def due(iteration: int, interval: Optional[int], total: int) -> bool:
    """Whether something done every `interval` iterations (and at the end) is due."""
    return bool(interval) and (iteration % interval == 0 or iteration == total)


def batch_indices(datasets: Sequence[DatasetBase], iteration: int, count: int) -> np.ndarray:
    """[count, K, batch] int32: member k's rows are datasets[k].batch_indices(...).

    Members that share a data set object and order seed share one draw.
    """
    by_order = {}
    rows = []
    for dataset in datasets:
        key = (id(dataset), dataset.train_order_seed)
        if key not in by_order:
            by_order[key] = dataset.batch_indices(iteration, count)
        rows.append(by_order[key])
    return np.ascontiguousarray(np.stack(rows, axis=1), dtype=np.int32)
