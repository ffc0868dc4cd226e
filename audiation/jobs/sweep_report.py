"""A sweep's report: each quality number per layer (count, median, quartiles, share above 1 for activation
ratios, share at lift >= 3 for units' phone names) as a Markdown table in `report.md`, the same numbers in
`report.csv`, and a box plot per measure in `report.png` (small multiples, a few to a row). Targets whose
optimisation was interrupted or stopped are left out, and the report says how many.

Written by `python -m audiation.report` and at the end of every multirun (`sweep_callbacks.Gallery`, before
the page, which links it).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from audiation.errors import AudiationError
from audiation.hearing.phones import NAMED_LIFT
from audiation.hearing.verdicts import VERDICTS
from audiation.outputs.disk import atomic, pyplot
from audiation.outputs.record_schema import MEASURES
from audiation.outputs.results import natural_key, read_jobs


def collect(jobs: list[tuple[Path, dict]]) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """({measure: {layer: values}} over every finished target under `folder`, NaN and missing values left
    out; the number of unfinished targets left out)."""
    values: dict[str, dict[str, list[float]]] = {m: {} for m in MEASURES}
    unfinished = 0
    for _, metrics in jobs:
        for target in metrics["targets"]:
            if target.get("stopped"):
                unfinished += 1
                continue
            for measure in MEASURES:
                value = target.get(measure)
                if isinstance(value, (int, float)) and np.isfinite(value):
                    values[measure].setdefault(str(target["layer"]), []).append(float(value))
    return {m: {layer: np.array(v) for layer, v in sorted(by_layer.items(), key=lambda kv: natural_key(kv[0]))}
            for m, by_layer in values.items() if by_layer}, unfinished


def verdict_rows(jobs: list[tuple[Path, dict]]) -> list[dict]:
    """Per layer and verdict (`verdicts.VERDICTS`): how often the judge hears each target's label in its own
    audiation (hit rate) against how often in the other targets' audiations of its job (chance rate)."""
    by_key: dict[tuple[str, str], list[tuple[bool, float | None]]] = {}
    for _, metrics in jobs:
        for target in metrics["targets"]:
            for name in VERDICTS:
                if isinstance(target.get(f"{name}_hit"), bool) and not target.get("stopped"):
                    by_key.setdefault((str(target["layer"]), name), []).append(
                        (target[f"{name}_hit"], target.get(f"{name}_chance")))
    rows = []
    for (layer, name), pairs in sorted(by_key.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1])):
        chances = [c for _, c in pairs if isinstance(c, (int, float))]
        rows.append({"verdict": name, "layer": layer, "targets": len(pairs),
                     "hit_rate": sum(h for h, _ in pairs) / len(pairs),
                     "chance_rate": float(np.mean(chances)) if chances else None})
    return rows


def summary_rows(collected: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    rows = []
    for measure, by_layer in collected.items():
        for layer, values in by_layer.items():
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            row = {"measure": measure, "layer": layer, "targets": len(values), "median": median, "q1": q1, "q3": q3,
                   "min": values.min(), "max": values.max()}
            if measure.startswith("activation_ratio"):
                row["share_above_1"] = float((values > 1).mean())
            if measure == "phone_lift":  # units with a phone name worth the name
                row[f"share_lift_{NAMED_LIFT:g}"] = float((values >= NAMED_LIFT).mean())
            rows.append(row)
    return rows


def write_report(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise AudiationError(f"{folder} is not a folder")
    jobs = read_jobs(folder)  # once: what it skips is said once
    if not jobs:
        raise AudiationError(f"no audiation results (metrics.json) under {folder}")
    collected, unfinished = collect(jobs)
    if not collected:
        raise AudiationError(f"no finished targets under {folder} ({unfinished} unfinished)")
    rows = summary_rows(collected)
    columns = ["measure", "layer", "targets", "median", "q1", "q3", "min", "max", "share_above_1",
               f"share_lift_{NAMED_LIFT:g}"]
    cell = lambda v: "" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    table += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    markdown = "\n".join(table) + "\n"
    verdicts = verdict_rows(jobs)
    if verdicts:
        names = ["verdict", "layer", "targets", "hit_rate", "chance_rate"]
        markdown += ("\nEach judge's verdict beside its chance rate (the label heard in the other targets' "
                     "audiations of the same job):\n\n| " + " | ".join(names) + " |\n|" + "---|" * len(names) + "\n")
        markdown += "".join("| " + " | ".join(cell(row[c]) for c in names) + " |\n" for row in verdicts)
    if unfinished:
        markdown += f"\n{unfinished} unfinished target(s) (interrupted or stopped) are left out.\n"
    with atomic(folder / "report.md") as temporary:
        temporary.write_text(f"# Audiation report: {folder.name}\n\n{markdown}")
    with atomic(folder / "report.csv") as temporary, open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    _plot(collected, folder / "report.png", folder.name)
    return folder / "report.md"


def _plot(collected: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    plt = pyplot()
    # Small multiples, at most 4 to a row and about as many rows as columns: a page, not a strip too wide to read.
    columns = min(4, math.ceil(math.sqrt(len(collected))))
    rows = math.ceil(len(collected) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), dpi=100, squeeze=False)
    for axis in axes.flat[len(collected):]:
        axis.set_visible(False)
    for axis, (measure, by_layer) in zip(axes.flat, collected.items()):
        axis.boxplot(list(by_layer.values()), tick_labels=list(by_layer.keys()))
        if measure.startswith("activation_ratio"):
            axis.axhline(1.0, color="grey", linestyle="--", linewidth=1)  # the dataset's own maximum
        axis.set(title=measure, xlabel="layer")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
