"""The reproduction report: ``<name>.md`` + ``<name>.json`` + plots in ``<name>/``.

All metric values are percentages except Uth, Q1+, Q3- and Sep (raw cosine units). A value with
several seeds is their mean, followed by ``± sd`` when there are at least two.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avloc.evaluation import report as eval_report
from avloc.jobs.reproduce.claims import FAILS, HOLDS, TOO_CLOSE, Claim
from avloc.jobs.reproduce.plan import Row
from avloc.utils.files import atomic_write_bytes, atomic_write_json

#: (header, path into the metrics, digits) of the methods table.
METHOD_COLUMNS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cIoU Uth ↑", ("positive", "universal", "ciou_mean"), 2),
    ("AUC Uth ↑", ("positive", "universal", "auc"), 2),
    ("cIoU Adap. ↑", ("positive", "adaptive", "ciou_mean"), 2),
    ("cIoU@0.5 Adap. ↑", ("positive", "adaptive", "ciou_at_05"), 2),
    ("pIA sil. ↓", ("silence", "pia"), 2),
    ("pIA noise ↓", ("noise", "pia"), 2),
    ("pIA off. ↓", ("offscreen", "pia"), 2),
    ("AUC_N sil. ↑", ("silence", "auc_n"), 2),
    ("AUC_N noise ↑", ("noise", "auc_n"), 2),
    ("AUC_N off. ↑", ("offscreen", "auc_n"), 2),
    ("FLOC ↑", ("global", "floc"), 2),
    ("FAUC ↑", ("global", "fauc"), 2),
    ("Sep ↑", ("global", "sep"), 4),
    ("shuffled cIoU Adap.", ("shuffled", "adaptive", "ciou_mean"), 2),
    ("a→i sem. R@1 ↑", ("retrieval", "a2i_semantic_R@1"), 2),
)

#: The ablation table, as the SSL-SaN paper prints it.
ABLATION_COLUMNS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cIoU Uth ↑", ("positive", "universal", "ciou_mean"), 2),
    ("pIA sil. ↓", ("silence", "pia"), 2),
    ("pIA noise ↓", ("noise", "pia"), 2),
    ("pIA off. ↓", ("offscreen", "pia"), 2),
    ("FLOC ↑", ("global", "floc"), 2),
    ("Sep ↑", ("global", "sep"), 4),
)


SENSITIVITY_COLUMNS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cIoU Uth ↑", ("positive", "universal", "ciou_mean"), 2),
    ("pIA sil. ↓", ("silence", "pia"), 2),
    ("pIA noise ↓", ("noise", "pia"), 2),
    ("pIA off. ↓", ("offscreen", "pia"), 2),
    ("FLOC ↑", ("global", "floc"), 2),
)


def metric_values(metrics_by_seed: Sequence[dict], path: tuple[str, ...]) -> list[float]:
    values = []
    for metrics in metrics_by_seed:
        value: Any = metrics
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(float(value))
    return values


def format_values(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    text = f"{np.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {np.std(values, ddof=1):.{digits}f}"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def methods_table(rows: Sequence[Row], metrics: Mapping[str, list[dict]]) -> str:
    header = ["Method", "Uth", *[c[0] for c in METHOD_COLUMNS]]
    body = []
    for row in rows:
        if row.key not in metrics:
            continue
        uth = format_values(metric_values(metrics[row.key], ("uth",)), 4)
        cells = [format_values(metric_values(metrics[row.key], p), d) for _, p, d in METHOD_COLUMNS]
        body.append([row.label, uth, *cells])
    return markdown_table(header, body)


def ablation_table(rows: Sequence[Row], metrics: Mapping[str, list[dict]]) -> str:
    header = ["Row", "S", "N", "L_S", "L_N", *[c[0] for c in ABLATION_COLUMNS]]
    body = []
    for number, row in enumerate(rows, 1):
        if row.key not in metrics or row.ablation is None:
            continue
        flags = ["✓" if on else "" for on in row.ablation]
        cells = [
            format_values(metric_values(metrics[row.key], p), d) for _, p, d in ABLATION_COLUMNS
        ]
        body.append([str(number), *flags, *cells])
    return markdown_table(header, body)


def sensitivity_table(rows: Sequence[Row], sensitivity: Mapping[str, dict]) -> str:
    """Per Uth statistic: each method's Uth, cIoU_Uth, pIA per negative, FLOC; claims 1-2."""
    header = ["Uth calibration", "Method", "Uth", *[c[0] for c in SENSITIVITY_COLUMNS]]
    body = []
    for statistic, entry in sensitivity.items():
        for row in rows:
            if row.key not in entry["metrics"]:
                continue
            by_seed = entry["metrics"][row.key]
            uth = format_values(metric_values(by_seed, ("uth",)), 4)
            cells = [format_values(metric_values(by_seed, p), d) for _, p, d in SENSITIVITY_COLUMNS]
            body.append([statistic, row.label, uth, *cells])
        verdicts = ", ".join(
            f"claim {i} {c.verdict or 'not run'}" for i, c in enumerate(entry["claims"], 1)
        )
        body.append([statistic, f"*{verdicts}*", "", *[""] * len(SENSITIVITY_COLUMNS)])
    return markdown_table(header, body)


#: A model "reaches empty negative maps" when the third quartile of its silence and noise map
#: maxima on the test images is at most this (raw cosine; positive maps peak at 0.5-0.9).
EMPTY_MAPS_LEVEL = 0.2


def seed_summary(per_sample: Mapping[str, np.ndarray], metrics: dict) -> dict[str, float | bool]:
    """One model's per-seed line: separability, negative-map level and the headline metrics."""
    negatives = np.concatenate([per_sample[f"max/{c}"] for c in ("silence", "noise")])
    level = float(np.percentile(negatives, 75))
    return {
        "sep": float(metrics["global"]["sep"]),
        "q1_pos": float(metrics["global"]["q1_pos"]),
        "q3_silence_noise": level,
        "empty_negative_maps": bool(level <= EMPTY_MAPS_LEVEL),
        "adaptive_ciou_at_05": float(metrics["positive"]["adaptive"]["ciou_at_05"]),
        "ciou_uth": float(metrics["positive"]["universal"]["ciou_mean"]),
        "pia_silence": float(metrics["silence"]["pia"]),
        "pia_noise": float(metrics["noise"]["pia"]),
        "pia_offscreen": float(metrics["offscreen"]["pia"]),
    }


def seeds_table(rows: Sequence[Row], per_seed: Mapping[str, Mapping[int, dict]]) -> str:
    """Every row's every seed, and per row how many seeds reach empty negative maps."""
    header = ["Row", "Seed", "Sep", "Q1+", "Q3 sil.+noise", "empty maps", "cIoU@0.5 Adap.",
              "cIoU Uth", "pIA sil.", "pIA noise", "pIA off."]  # fmt: skip
    body = []
    for row in rows:
        seeds = per_seed.get(row.key, {})
        for seed, v in sorted(seeds.items()):
            body.append([
                row.label, str(seed), f"{v['sep']:.3f}", f"{v['q1_pos']:.3f}",
                f"{v['q3_silence_noise']:.3f}", "yes" if v["empty_negative_maps"] else "no",
                f"{v['adaptive_ciou_at_05']:.2f}", f"{v['ciou_uth']:.2f}",
                f"{v['pia_silence']:.2f}", f"{v['pia_noise']:.2f}", f"{v['pia_offscreen']:.2f}",
            ])  # fmt: skip
        if seeds:
            empty = sum(v["empty_negative_maps"] for v in seeds.values())
            body.append([f"*{row.label}*", f"*{empty} of {len(seeds)} empty*", *[""] * 9])
    return markdown_table(header, body)


#: How the claims table prints each verdict (None: the rows were not trained).
VERDICT_CELLS = {HOLDS: "**holds**", FAILS: "**fails**", TOO_CLOSE: "*too close to call*",
                 None: "not run"}  # fmt: skip


def claims_table(claims: Sequence[Claim]) -> str:
    body = [[str(i), c.text, VERDICT_CELLS[c.verdict], c.evidence] for i, c in enumerate(claims, 1)]
    return markdown_table(["#", "Claim", "Verdict", "Evidence"], body)


def claims_summary(claims: Sequence[Claim]) -> str:
    """E.g. "**3 of 7 claims hold**, 1 fails, 1 is too close to call and 2 were not run"."""
    count = {v: sum(c.verdict == v for c in claims) for v in VERDICT_CELLS}
    parts = [
        f"{count[FAILS]} fail{'s' if count[FAILS] == 1 else ''}",
        f"{count[TOO_CLOSE]} {'is' if count[TOO_CLOSE] == 1 else 'are'} too close to call",
    ]
    if count[None]:
        parts.append(f"{count[None]} {'was' if count[None] == 1 else 'were'} not run")
    return (
        f"**{count[HOLDS]} of {len(claims)} claims hold**, {', '.join(parts[:-1])} and {parts[-1]}"
    )


# ---------------------------------------------------------------------------------------------
# plots


def plot_negative_pia(rows: Sequence[Row], metrics: Mapping[str, list[dict]], path: Path):
    """Grouped bars: pIA under silence, noise and offscreen audio per row."""
    plt = eval_report._pyplot()
    shown = [r for r in rows if r.key in metrics]
    conditions = ("silence", "noise", "offscreen")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(shown) + 2), 3.8))
    width = 0.8 / len(conditions)
    x = np.arange(len(shown))
    for i, condition in enumerate(conditions):
        means = [
            np.mean(metric_values(metrics[r.key], (condition, "pia")) or [np.nan]) for r in shown
        ]
        ax.bar(x + (i - 1) * width, means, width, label=condition)
    ax.set_xticks(x, [r.label for r in shown], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("pIA (% of image above Uth)")
    ax.set_title("Activation under negative audio (lower is better)")
    ax.legend(fontsize=8)
    return eval_report._save(fig, path)


def plot_ablation(rows: Sequence[Row], metrics: Mapping[str, list[dict]], path: Path):
    """Sep and FLOC per ablation row, side by side."""
    plt = eval_report._pyplot()
    shown = [r for r in rows if r.key in metrics and r.ablation is not None]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (metric, title) in zip(axes, (("sep", "Separability"), ("floc", "FLOC")), strict=True):
        values = [metric_values(metrics[r.key], ("global", metric)) for r in shown]
        means = [np.mean(v) if v else np.nan for v in values]
        errors = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
        colors = ["tab:red" if r.key == "ablation-7" else "tab:gray" for r in shown]
        ax.bar(np.arange(len(shown)), means, yerr=errors, color=colors)
        ax.set_xticks(np.arange(len(shown)), [r.label for r in shown], rotation=25, ha="right",
                      fontsize=8)  # fmt: skip
        ax.set_title(f"{title} per ablation row (full row in red)")
    return eval_report._save(fig, path)


# ---------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import keras

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }


def write_report(
    out_dir: Path,
    name: str,
    *,
    rows: Sequence[Row],
    metrics: Mapping[str, list[dict]],
    claims: Sequence[Claim],
    settings: dict[str, Any],
    figures: Mapping[str, Path],
    notes: str = "",
    sensitivity: Mapping[str, dict] | None = None,
    per_seed: Mapping[str, Mapping[int, dict]] | None = None,
) -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.json``; ``figures`` are paths already under out_dir."""
    out_dir = Path(out_dir)
    methods = [r for r in rows if r.methods]
    ablation = [r for r in rows if r.ablation is not None]
    rel = {k: p.relative_to(out_dir).as_posix() for k, p in figures.items()}
    lines = [
        f"# The SSL-SaN paper's claims in miniature: {settings['title']}",
        "",
        "This file is written by `" + settings["command"] + "`; do not edit it by hand "
        "(the notes it links to are hand-written).",
        "",
        f"{claims_summary(claims)} in this setting. "
        f"Training and recording took {settings['trained_seconds'] / 60:.1f} min of job time "
        f"({settings['workers']} job(s) at a time, {settings['wall_seconds'] / 60:.1f} min of "
        f"wall time) on {settings['machine']['cpu_count']} CPU cores "
        f"({settings['machine']['backend']} backend).",
        "",
        "## Setting",
        "",
        *[f"- {line}" for line in settings["lines"]],
        "",
        "## Claims",
        "",
        claims_table(claims),
        "",
        "Differences are paired over the same test samples (and seeds), with a 95% bootstrap "
        "interval in brackets; the rules behind each verdict are in "
        "`avloc/jobs/reproduce/claims.py`.",
        "",
        "## Methods",
        "",
        methods_table(methods, metrics),
        "",
        "## Ablation (the SSL-SaN paper's table)",
        "",
        ablation_table(ablation, metrics),
        "",
    ]
    if per_seed:
        lines += [
            "## Per seed",
            "",
            "Each training seed of each row (method rows first; ablation rows 1 and 7 are the "
            "SSL-TIE and SSL-SaN runs). *Empty maps*: the third quartile of the silence and noise "
            f"map maxima on the test images is at most {EMPTY_MAPS_LEVEL} (cosine), i.e. the "
            "model's maps are empty for audio-free input whatever Uth is.",
            "",
            seeds_table([r for r in rows if r.key not in ("ablation-1", "ablation-7")], per_seed),
            "",
        ]
    if sensitivity:
        lines += [
            "## Uth calibration (claims 1-2 and offscreen pIA under other calibrations)",
            "",
            "Uth is recomputed from each model's map maxima on the same label-free calibration "
            "images (training scenes) under the calibration audio named: silence, noise, and "
            "*other* (another training clip's audio, mostly an offscreen sound for the image); "
            "the first line is the recipes' own. It shows the trade-off between cIoU at Uth and "
            "offscreen pIA.",
            "",
            sensitivity_table(methods, sensitivity),
            "",
        ]
    lines += [
        "## Figures",
        "",
        *[f"![{k}]({v})" for k, v in rel.items()],
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes, ""]
    md = out_dir / f"{name}.md"
    atomic_write_bytes(md, "\n".join(lines).encode())
    payload = {
        "settings": settings,
        "claims": [c.to_dict() for c in claims],
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                "recipe": r.recipe,
                "methods": r.methods,
                "ablation": r.ablation,
                "metrics_by_seed": metrics.get(r.key, []),
            }
            for r in rows
        ],
        "figures": rel,
        "per_seed": {k: {str(s): v for s, v in d.items()} for k, d in (per_seed or {}).items()},
        "uth_sensitivity": {
            statistic: {
                "metrics_by_row": entry["metrics"],
                "claims": [c.to_dict() for c in entry["claims"]],
            }
            for statistic, entry in (sensitivity or {}).items()
        },
    }
    js = out_dir / f"{name}.json"
    atomic_write_json(js, payload)
    return {"markdown": md, "json": js}
