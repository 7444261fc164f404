"""Writing records as CSV and as a Markdown summary table."""

import csv
import io
import math
from typing import Any, Dict, Iterable, List, Sequence

from lottery_ticket.foundations import save_restore

Record = Dict[str, Any]


def to_csv(rows: Sequence[Record]) -> str:
    """CSV text with a header of every key that appears, in first-seen order."""
    columns: List[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: str, rows: Sequence[Record]) -> None:
    """Writes rows as CSV, atomically."""
    save_restore.write_bytes_atomically(path, to_csv(rows).encode("utf-8"))


def _cell(row: Record, metric: str, scale: float, digits: int) -> str:
    mean = row[f"{metric}_mean"]
    if math.isnan(mean):
        return "n/a"
    low, high = row[f"{metric}_min"] * scale, row[f"{metric}_max"] * scale
    return f"{mean * scale:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summary_markdown(summary: Iterable[Record], title: str) -> str:
    """The summary as a Markdown table: mean [min, max] across runs."""
    lines = [f"# {title}", "",
             "Mean [min, max] over the runs of each experiment at each level. Early stopping "
             "is the iteration of minimum validation loss (test loss where a run has no "
             "validation split).", "",
             "| experiment | level | weights remaining (%) | runs | early-stop iteration | "
             "test accuracy at early stop (%) | final test accuracy (%) | best test "
             "accuracy (%) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in summary:
        lines.append(
            f"| {row['experiment_name']} | {row['level']} | {100 * row['remaining']:.2f} | "
            f"{row['runs']} | {_cell(row, 'early_stop_iteration', 1, 0)} | "
            f"{_cell(row, 'early_stop_test_accuracy', 100, 2)} | "
            f"{_cell(row, 'final_test_accuracy', 100, 2)} | "
            f"{_cell(row, 'best_test_accuracy', 100, 2)} |")
    return "\n".join(lines) + "\n"

