"""``gpu.md``: the section of ``RESULTS.md`` that ``gpu.py`` writes from its report.

:func:`markdown` turns the report of :func:`benchmarks.gpu_run.run` into the command, the train
step table (fp32 and bf16, compiled variants last), the largest batch, the data, the loader and
heatmap-video tables, the end-to-end epochs against the step alone, the parts and the machine.
"""

from __future__ import annotations

import time

from benchmarks.gpu_parts import shapes
from benchmarks.machine import machine_lines


def fmt_rate(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) and value else "-"


def markdown(report: dict, args) -> str:
    s, b = shapes(args), args.batch
    lines = [
        f"### GPU: one run of `benchmarks.gpu` ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python3 -m benchmarks.gpu {' '.join(args.argv)}` ({report['seconds']:.0f} s)",
        "",
        f"Train step (EZ-VSL ResNet-18 pair, width {s['width']}, {s['image_size']} px, "
        f"{s['clip_seconds']:g} s audio, D {s['dim']}, Adam), samples/s ("
        "--extra-variants in the last rows: timed in parts of their own, after the rest):",
        "",
        f"| variant | fp32, batch {b} | bf16, batch {b} |",
        "| --- | --- | --- |",
    ]
    for table in (report["train_step"], report.get("train_step_extra") or {}):
        names = sorted(set(table.get("fp32", {})) | set(table.get("bf16", {})))
        for name in names:
            fp32 = table.get("fp32", {}).get(name)
            bf16 = table.get("bf16", {}).get(name)
            lines.append(f"| {name} | {fmt_rate(fp32)} | {fmt_rate(bf16)} |")
    big = report["largest_batch"]
    lines += [
        "",
        f"Largest bf16 batch of `keras-torch` that ran: {big['fits']['batch']} "
        f"({fmt_rate(big['fits']['samples_per_s'])} samples/s); tried: "
        + (", ".join(f"{a['batch']} ({a['status']})" for a in big["attempts"]) or "none"),
        "",
        f"Data: {report['prepare']['scenes']} synthetic scenes at "
        f"{report['prepare']['stored_size']} px in {report['prepare']['seconds']} s "
        f"({report['prepare']['parts']} parallel parts).",
        "",
        f"Loader (`TrainBatches`, SSL-SaN inputs, batch {b}), steady samples/s:",
        "",
        "| configuration | samples/s |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {fmt_rate(v)} |" for name, v in report["loader"].items()]
    lines += [
        "",
        "Heatmap video (`benchmarks.video`: decode, maps, draw, encode; 10 output frames/s):",
        "",
        "| engine | batch | frames/s | x real time |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {v['engine']} | {v['batch_size']} | {v['frames_per_s']:.1f} | {v['x_real_time']:.2f} |"
        for v in report.get("video", [])
    ]
    e2e = report["end_to_end"]
    ratio = e2e["ratio_to_step_alone"]
    lines += [
        "",
        f"End to end (`avloc train recipes/ezvsl_san.toml`, bf16, batch {b}, {e2e['workers']} "
        f"loader threads, {args.steps_per_epoch} steps per epoch), per epoch:",
        "",
        "| epoch | samples/s | seconds | loss |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {e['epoch']} | {fmt_rate(e['samples_per_s'])} | {e['seconds']:.1f} | {e['loss']:.3f} |"
        for e in e2e["epochs"]
    ]
    lines += [
        "",
        f"End to end {fmt_rate(e2e['samples_per_s'])} samples/s (median of the epochs after the "
        f"first) vs the step alone {fmt_rate(e2e['step_alone_samples_per_s'])}: "
        + (f"{ratio:.2f}x" if ratio else "-"),
        "",
        "Every end-to-end setting (samples/s: median of the epochs after the first; the step "
        "alone: the train-step part named):",
        "",
        "| setting | recipe | samples/s | step alone | x step alone |",
        "| --- | --- | --- | --- | --- |",
    ]
    settings = {"EZ-VSL setting, torch": e2e, **report.get("end_to_end_more", {})}
    lines += [
        f"| {name} | `{v['recipe']}` | {fmt_rate(v['samples_per_s'])} | "
        f"{v['step_alone'] or '-'} {fmt_rate(v['step_alone_samples_per_s'])} | "
        + (f"{v['ratio_to_step_alone']:.2f}x" if v["ratio_to_step_alone"] else "-")
        + " |"
        for name, v in settings.items()
    ]
    lines += [
        "",
        "Parts: "
        + "; ".join(
            f"{n} {p['status']} ({p['seconds']:.0f} s)" for n, p in report["parts"].items()
        ),
        "",
        "```",
        *machine_lines(report["machine"]),
        "```",
        "",
    ]
    return "\n".join(lines)
