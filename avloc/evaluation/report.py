"""Results for people: rich tables laid out like the SSL-SaN paper's, and PNG plots.

Tables (one row per model; percentages unless noted):

- main (the SSL-SaN paper's): cIoU (mean) and AUC at Uth and adaptive threshold | pIA and AUC_N for
  silence, noise, offscreen | FLOC, FAUC;
- classic: cIoU@0.5 and AUC per threshold family (median is the classic cIoU table), and
  Separability with its quartiles (raw cosine units);
- retrieval (R@1/5/10), S4, interactive and the shuffled-audio control when computed;
- ``--protocol vssl_eval``'s one table (:func:`vssl_table`): vssl_eval's headline numbers at
  each model's threshold.

Plots: score distributions (positive vs each negative, Q1+, Q3- and Uth marked), the
fraction-of-samples vs cIoU-threshold curves, and overlay grids (see :func:`overlay_grid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avloc.utils.files import atomic_path

NEGATIVES = ("silence", "noise", "offscreen")
CONDITION_TITLES = {
    "positive": "positive",
    "silence": "silence",
    "noise": "noise",
    "offscreen": "offscreen",
    "shuffled": "shuffled audio",
}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _get(metrics: dict, *keys: str):
    for key in keys:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


def build_tables(rows: Sequence[dict[str, Any]], title: str) -> list:
    """rich Tables for ``rows`` = ``[{"name", "metrics"}, ...]``."""
    from rich.table import Table

    tables = []
    negatives = [n for n in NEGATIVES if any(n in r["metrics"] for r in rows)]
    has_loc = any("positive" in r["metrics"] for r in rows)

    main = Table(title=f"{title}: positive and negative audio", title_justify="left")
    main.add_column("Model", no_wrap=True)
    main.add_column("Uth", justify="right")
    if has_loc:
        for header in ("cIoU\nUth ↑", "cIoU\nAdap. ↑", "AUC\nUth ↑", "AUC\nAdap. ↑"):
            main.add_column(header, justify="right")
    for n in negatives:
        main.add_column(f"{n}\npIA ↓", justify="right")
        main.add_column(f"{n}\nAUC_N ↑", justify="right")
    if has_loc and negatives:
        main.add_column("FLOC ↑", justify="right")
        main.add_column("FAUC ↑", justify="right")
    for r in rows:
        m = r["metrics"]
        cells = [r["name"], _fmt(m.get("uth"), 4)]
        if has_loc:
            cells += [
                _fmt(_get(m, "positive", "universal", "ciou_mean")),
                _fmt(_get(m, "positive", "adaptive", "ciou_mean")),
                _fmt(_get(m, "positive", "universal", "auc")),
                _fmt(_get(m, "positive", "adaptive", "auc")),
            ]
        for n in negatives:
            cells += [_fmt(_get(m, n, "pia")), _fmt(_get(m, n, "auc_n"))]
        if has_loc and negatives:
            cells += [_fmt(_get(m, "global", "floc")), _fmt(_get(m, "global", "fauc"))]
        main.add_row(*cells)
    tables.append(main)

    classic = Table(title=f"{title}: threshold families and separability", title_justify="left")
    classic.add_column("Model", no_wrap=True)
    families = ("median", "adaptive", "universal")
    if has_loc:
        for family in families:
            classic.add_column(f"{family}\ncIoU@0.5 ↑", justify="right")
            classic.add_column(f"{family}\nAUC ↑", justify="right")
    for header in ("Sep ↑", "Q1+", "Q3-"):
        classic.add_column(header, justify="right")
    for r in rows:
        m = r["metrics"]
        cells = [r["name"]]
        if has_loc:
            for family in families:
                cells += [
                    _fmt(_get(m, "positive", family, "ciou_at_05")),
                    _fmt(_get(m, "positive", family, "auc")),
                ]
        cells += [_fmt(_get(m, "global", k), 4) for k in ("sep", "q1_pos", "q3_neg")]
        classic.add_row(*cells)
    tables.append(classic)

    if any("retrieval" in r["metrics"] for r in rows):
        keys = sorted({k for r in rows for k in r["metrics"].get("retrieval", {})}, key=_rkey)
        table = Table(title=f"{title}: cross-modal retrieval (%)", title_justify="left")
        table.add_column("Model", no_wrap=True)
        for k in keys:
            direction, kind, at = k.split("_")
            arrow = "audio→image" if direction == "a2i" else "image→audio"
            table.add_column(f"{arrow}\n{kind[:4]}. {at}", justify="right")
        for r in rows:
            table.add_row(r["name"], *[_fmt(_get(r["metrics"], "retrieval", k)) for k in keys])
        tables.append(table)

    for section, label in (
        ("s4", "AVSBench S4"),
        ("slavc", "SLAVC detection, visible vs offscreen + silent pairs"),
    ):
        if any(section in r["metrics"] for r in rows):
            keys = list(next(r["metrics"][section] for r in rows if section in r["metrics"]))
            table = Table(title=f"{title}: {label} (%)", title_justify="left")
            table.add_column("Model", no_wrap=True)
            for k in keys:
                table.add_column(k, justify="right")
            for r in rows:
                table.add_row(r["name"], *[_fmt(_get(r["metrics"], section, k)) for k in keys])
            tables.append(table)

    for section, label, keys in (
        ("interactive", "interactive (two sounds per image)", ("iiou", "iauc")),
        ("shuffled", "control: audio from other samples", ("ciou_at_05", "ciou_mean", "auc")),
    ):
        headers = {"iiou": "IIoU", "iauc": "IAUC", "ciou_at_05": "cIoU@0.5", "ciou_mean": "cIoU"}
        if any(section in r["metrics"] for r in rows):
            table = Table(title=f"{title}: {label} (%)", title_justify="left")
            table.add_column("Model", no_wrap=True)
            for family in families:
                for k in keys:
                    table.add_column(f"{family}\n{headers.get(k, k.upper())}", justify="right")
            for r in rows:
                cells = [r["name"]]
                for family in families:
                    cells += [_fmt(_get(r["metrics"], section, family, k)) for k in keys]
                table.add_row(*cells)
            tables.append(table)
    return tables


def vssl_table(rows: Sequence[dict[str, Any]], title: str):
    """The ``--protocol vssl_eval`` table: a row per model (``{"name", "family", "uth",
    "metrics"}``, the metrics of :func:`avloc.evaluation.vssl_scoring.score`), vssl_eval's CIoU and
    AUC at its threshold, CIoU at 0.5, pIA and AUC_N per negative, and its F-scores."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    headers = ["Model", "family", "thr", "CIoU\nthr ↑", "AUC\nthr ↑", "CIoU\n0.5 ↑"]
    headers += [f"{k}\npIA ↓" for k in NEGATIVES]
    headers += [f"{k}\nAUC_N ↑" for k in NEGATIVES]
    headers += ["F pos/neg ↑", "F AUC ↑"]
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for row in rows:
        m = row["metrics"]
        at = m["uth"]
        cells = [row["name"], row["family"], _fmt(row["uth"], 4)]
        cells += [_fmt(at["CIoU"]), _fmt(at["AUC"]), _fmt(m["0.5"]["CIoU"])]
        cells += [_fmt(at[f"pIA_{k}"]) for k in NEGATIVES]
        cells += [_fmt(at[f"AUC_N_{k}"]) for k in NEGATIVES]
        cells += [_fmt(m["F"]["F_pos_neg"]), _fmt(m["F"]["F_auc"])]
        table.add_row(*cells)
    return table


def _rkey(key: str):
    direction, kind, at = key.split("_")
    return (direction, kind, int(at.split("@")[1]))


def absent_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per model and condition asked for but not computed (a row's ``"absent"``)."""
    return [
        f"{condition}: absent for {r['name']} ({why})"
        for r in rows
        for condition, why in r.get("absent", {}).items()
    ]


def render_text(tables: list, notes: Sequence[str] = (), width: int = 220) -> str:
    """The tables as text, then ``notes`` (one line each) below them."""
    from rich.console import Console

    console = Console(record=True, width=width, file=open("/dev/null", "w"))  # noqa: SIM115
    for table in tables:
        console.print(table)
    text = console.export_text()
    return text + "".join(f"{note}\n" for note in notes)


# --------------------------------------------------------------------------------------------
# Plots


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_score_distributions(
    name: str, per_sample: dict[str, np.ndarray], metrics: dict, path: Path
) -> Path | None:
    """Histograms of per-pair scores (map maxima): positive vs each negative condition."""
    conditions = [c for c in ("positive", *NEGATIVES) if f"max/{c}" in per_sample]
    if len(conditions) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    values = np.concatenate([per_sample[f"max/{c}"] for c in conditions])
    bins = np.linspace(values.min(), values.max() + 1e-6, 40)
    for condition in conditions:
        ax.hist(
            per_sample[f"max/{condition}"],
            bins=bins,
            alpha=0.5,
            label=CONDITION_TITLES[condition],
            density=True,
        )
    marks = (
        ("Q1+", _get(metrics, "global", "q1_pos"), "tab:blue", "--"),
        ("Q3-", _get(metrics, "global", "q3_neg"), "tab:red", "--"),
        ("Uth", metrics.get("uth"), "black", "-"),
    )
    for label, x, color, style in marks:
        if x is not None:
            ax.axvline(x, color=color, linestyle=style, label=f"{label} = {x:.3f}")
    ax.set_xlabel("pair score: maximum of the raw similarity map (cosine)")
    ax.set_ylabel("density")
    ax.set_title(f"{name}: positive and negative score distributions")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_success_curves(
    rows: Sequence[tuple[str, dict[str, np.ndarray]]], path: Path, key_prefix: str = "ciou"
) -> Path | None:
    """Fraction of samples with cIoU >= t against t, per threshold family, one line per model."""
    families = ("median", "adaptive", "universal")
    if not any(f"{key_prefix}/universal" in per for _, per in rows):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    grid = np.linspace(0, 1, 21)
    for ax, family in zip(axes, families, strict=True):
        for name, per in rows:
            values = per.get(f"{key_prefix}/{family}")
            if values is not None:
                ax.plot(grid, [np.mean(values >= t) for t in grid], marker=".", label=name)
        ax.set_title(f"{family} threshold")
        ax.set_xlabel("cIoU threshold t")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of samples with cIoU >= t")
    axes[-1].legend(fontsize=8)
    return _save(fig, path)


def overlay_grid(
    name: str,
    images: np.ndarray,
    maps: dict[str, np.ndarray],
    uth: float,
    ids: Sequence[str],
    path: Path,
    ground_truth: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> Path:
    """A grid of heatmap overlays: one row per sample, one column per audio condition.

    Args:
        images: uint8 ``(n, S, S, 3)``; maps: ``{condition: float32 (n, S, S)}`` raw cosine.
        uth: the universal threshold drawn as the outlined region.
        ground_truth: float ``(n, S, S)`` in [0, 1] (boxes or mask), drawn as a dashed white
            contour at 0.5 on every tile; ``classes``: the sounding class of each row.
    Row labels hold the whole sample id (wrapped) and its class.
    """
    import textwrap

    from avloc.media.overlay import overlay_heatmap

    plt = _pyplot()
    conditions = list(maps)
    # One colour scale for the whole grid so conditions compare by colour.
    lo = float(min(m.min() for m in maps.values()))
    hi = float(max(m.max() for m in maps.values()))
    value_range = (lo, hi if hi > lo else lo + 1e-6)
    n = len(images)
    fig, axes = plt.subplots(
        n, len(conditions), figsize=(2.4 * len(conditions), 2.4 * n), squeeze=False
    )
    for row in range(n):
        for col, condition in enumerate(conditions):
            heat = maps[condition][row]
            ax = axes[row][col]
            ax.imshow(overlay_heatmap(images[row], heat, threshold=uth, value_range=value_range))
            ax.set_xticks([])
            ax.set_yticks([])
            if ground_truth is not None and np.ptp(ground_truth[row]) > 0:
                ax.contour(
                    ground_truth[row], levels=[0.5], colors="white", linewidths=1.2,
                    linestyles="dashed",
                )  # fmt: skip
            ax.set_xlabel(f"max {heat.max():.3f}", fontsize=7)
            if row == 0:
                ax.set_title(CONDITION_TITLES.get(condition, condition), fontsize=9)
            if col == 0:
                label = "\n".join(textwrap.wrap(str(ids[row]), 20, break_on_hyphens=False))
                if classes is not None and classes[row]:
                    label += f"\n({classes[row]})"
                ax.set_ylabel(label, fontsize=6)
    fig.suptitle(
        f"{name}: heatmaps, colours {lo:.3f} (blue) to {hi:.3f} (red); outline: map > Uth = "
        f"{uth:.3f}" + ("; dashed white: ground truth" if ground_truth is not None else ""),
        fontsize=10,
    )
    return _save(fig, path)
