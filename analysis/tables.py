"""Writing records as CSV and as a Markdown summary table."""

import csv
import io
import math
from typing import Any, Dict, Iterable, List, Sequence

from lottery_ticket.foundations import save_restore

Record = Dict[str, Any]


def to_csv(rows: Sequence[Record]) -> str:
    """CSV text with a header of every key that appears, in first-seen order.

    Args:
      rows: dicts, one per row.
    """
    columns: List[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: str, rows: Sequence[Record]) -> None:
    """Writes rows as CSV, atomically.

    Args:
      path: the file.
      rows: dicts, one per row.
    """
    save_restore.write_bytes_atomically(path, to_csv(rows).encode("utf-8"))


def plural(count: int, noun: str, plural_noun: str = "") -> str:
    """'1 run', '2 runs', '0 runs'.

    Args:
      count: how many.
      noun: the singular noun.
      plural_noun: the plural, if not noun + 's'.
    """
    return f"{count} {noun if count == 1 else (plural_noun or noun + 's')}"


def _cell(row: Record, metric: str, scale: float, digits: int) -> str:
    mean = row[f"{metric}_mean"]
    if math.isnan(mean):
        return "n/a"
    low, high = row[f"{metric}_min"] * scale, row[f"{metric}_max"] * scale
    return f"{mean * scale:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summary_markdown(summary: Iterable[Record], title: str, diverged: Sequence[str] = (),
                     left_out: int = 0) -> str:
    """The summary as a Markdown table: mean [min, max] across runs.

    Args:
      summary: rows from metrics.summarize.
      title: the heading.
      diverged: paths of runs that diverged; a line above the table names
        them, so a reader knows they are not in it.
      left_out: how many other runs were left out (incomplete or damaged);
        a line says so and points at problems.txt.
    """
    lines = [f"# {title}", "",
             "Mean [min, max] over the runs of each experiment at each level. Early stopping "
             "is the iteration of minimum validation loss (test loss where a run has no "
             "validation split).", ""]
    if diverged:
        lines += [f"Excluded: {plural(len(diverged), 'diverged run')} (training stopped on a "
                  "non-finite loss or weights; see problems.txt): "
                  + ", ".join(f"`{path}`" for path in diverged) + ".", ""]
    if left_out:
        lines += [f"Left out: {plural(left_out, 'other run')} (incomplete or damaged), "
                  "listed in problems.txt.", ""]
    lines += ["| experiment | level | weights remaining (%) | runs | early-stop iteration | "
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

