"""What ``train_step.py`` reports: each variant's figures from its timed rounds, and the table.

- :func:`step_peak`: the FP32 (and BF16) peak the GFLOP/s are compared with;
- :func:`variant_results`: per variant, samples/s over the rounds, the paired ratio to plain
  torch, ms per step, GFLOP/s and % of the peak (what ``--json`` holds);
- :func:`print_report`: the settings, FLOPs and peak lines, the table and the machine.
"""

from __future__ import annotations

from benchmarks.machine import cpu_cores, cpu_fp32_peak, print_machine
from benchmarks.report import print_failures, print_table
from benchmarks.timing import paired_ratio, summarize
from benchmarks.train_step_groups import REFERENCE


def step_peak(args, measured: dict | None) -> dict:
    """The CUDA peak a process ``measured``, else the CPU's (of ``--threads`` cores if set)."""
    peak = measured
    if peak is None:
        peak = cpu_fp32_peak(fma_units=args.fma_units) if args.device == "cpu" else {}
    if args.device == "cpu" and args.threads:  # the peak of the cores the frameworks may use
        peak = cpu_fp32_peak(cores=min(args.threads, cpu_cores()), fma_units=args.fma_units)
    return peak


def variant_results(args, names, setup, values, failed, flops, peak) -> dict:
    """variant -> its setup info, rounds and figures (errors of building or timing included)."""
    reference = values.get(REFERENCE)
    results = {}
    for name in names:
        entry = dict(setup[name])
        if name in failed:
            entry["error"] = failed[name]
        rounds = values.get(name, [])
        stats = summarize(rounds)
        rate = stats["median"]
        gflops = flops["train_per_batch"] * rate / args.batch / 1e9 if rate else None
        entry.update(
            samples_per_s=stats,
            rounds=rounds,
            ratio_vs_torch=paired_ratio(rounds, reference) if reference else None,
            ms_per_step=1000 * args.batch / rate if rate else None,
            gflops=gflops,
            pct_fp32_peak=100 * gflops / peak["gflops"] if gflops and peak.get("gflops") else None,
            pct_bf16_peak=(
                100 * gflops / peak["bf16_gflops"]
                if gflops and peak.get("bf16_gflops") and args.precision == "bf16"
                else None
            ),
        )
        results[name] = entry
    return results


def print_report(args, freq, frames, flops, peak, results, machine) -> None:
    print()
    print(
        f"train step, EZ-VSL ResNet-18 pair: batch {args.batch}, image {args.image_size} px, "
        f"audio {freq}x{frames}, width {args.width}, D {args.dim}, {args.precision}, "
        f"{args.device}, threads {args.threads or 'default'}; {args.repeats} interleaved rounds "
        f"x {args.steps} steps, {max(1, args.warmup)} warm-up steps"
    )
    print(
        f"FLOPs (analytic, 2 x MACs): forward {flops['forward_per_batch'] / 1e9:.2f} GFLOP per "
        f"batch, training ~3x = {flops['train_per_batch'] / 1e9:.2f} GFLOP per step"
    )
    if peak.get("gflops"):
        if "sms" in peak:
            where = f"{peak['gpu']}, {peak['sms']} SMs x {peak['ghz']:.2f} GHz"
        else:
            where = (
                f"{peak['cores']} core{'s' if peak['cores'] != 1 else ''} x "
                f"{peak['ghz']:.2f} GHz x "
                f"{peak['flop_per_cycle_per_core']} FLOP/cycle ({peak['isa']}, "
                f"{peak['fma_units']} FMA units)"
            )
        bf16 = f"; BF16 tensor ~{peak['bf16_gflops']:,.0f}" if peak.get("bf16_gflops") else ""
        print(f"FP32 peak ~{peak['gflops']:,.0f} GFLOP/s ({where}; {peak['note']}){bf16}")
    else:
        print("FP32 peak: unknown")
    headers = [
        "variant",
        "process",
        "params",
        "samples/s",
        "min-max",
        f"x {REFERENCE}",
        "ms/step",
        "GFLOP/s",
        "% FP32 peak",
    ]
    bf16 = args.precision == "bf16" and any(r["pct_bf16_peak"] for r in results.values())
    if bf16:
        headers.append("% BF16 peak")
    rows = []
    for name, r in results.items():
        s = r["samples_per_s"]
        span = f"{s['min']:.3g}-{s['max']:.3g}" if s["n"] else "-"
        params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else "-"
        row = [
            name,
            r["process"],
            params,
            s["median"],
            span,
            f"{r['ratio_vs_torch']:.3f}" if r["ratio_vs_torch"] is not None else "-",
            r["ms_per_step"],
            r["gflops"],
            r["pct_fp32_peak"] if r["pct_fp32_peak"] is not None else "unknown",
        ]
        if bf16:
            row.append(r["pct_bf16_peak"] if r["pct_bf16_peak"] is not None else "unknown")
        rows.append(row)
    print_table(headers, rows)
    print_failures(results)
    setup = ", ".join(f"{n} {r['setup_s']} s" for n, r in results.items() if "setup_s" in r)
    print(f"build + warm-up (untimed): {setup or '-'}")
    print(
        f"x {REFERENCE}: median over rounds of (variant samples/s / plain torch samples/s in "
        "the same round); > 1 is faster than plain PyTorch"
    )
    print_machine(machine)
