"""``engagement bench``: run the parts on an embedded stack, print the figures, write JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream.dev.bench.latency import latency
from stream.dev.bench.throughput import throughput
from stream.dev.stack import LocalStack


def run_bench(  # one keyword per command-line option
    *,
    events: int,
    envelope_size: int,
    rate: int,
    latency_seconds: int,
    out: Path | None,
    part: str = "all",
    nudges: int = 5000,
    metrics: str = "full",
    ingest: dict[str, int] | None = None,
) -> int:
    """Run the worker's throughput runs (with envelopes, and one event per message) and its
    latency run, and the notifier's delivery run; ``part`` picks one side."""
    workdir = Path(".engagement") / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine_cores": __import__("os").cpu_count(),
        "at": datetime.now(UTC).isoformat(),
    }
    with LocalStack(workdir / "stack") as stack:
        endpoints = stack.endpoints
        if part in ("all", "ingest"):
            _ingest(endpoints, workdir, results, ingest or {})
        if part == "import":
            from stream.dev.bench.imports import import_bench

            rows = (ingest or {}).get("rows", 200_000)
            size = (ingest or {}).get("bytes")
            what = f"{size:,} bytes" if size else f"{rows:,} rows"
            print(f"import: a register export of {what} through a mapping ...", flush=True)
            imported = import_bench(endpoints, workdir, rows, size_bytes=size)
            results["import_register"] = imported
            print(
                f"  {imported['rows_per_second']:,.0f} rows/s, "
                f"{imported['rows_per_second_after_startup']:,.0f} after start-up, "
                f"{imported['cpu_us_per_row']:.1f} µs CPU a row "
                f"({imported['export_mib']:.0f} MiB "
                f"in {imported['seconds']:.1f}s; import peak RSS "
                f"{imported['peak_rss_mib']:.0f} MiB; {imported['summary']})",
                flush=True,
            )
        if part in ("ingest", "import"):
            if out is not None:
                out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            return 0
        if part in ("all", "notifier"):
            from stream.dev.bench.notifier import notifier_bench

            print(f"notifier: {nudges} prompts through the signed webhook ...", flush=True)
            delivery = notifier_bench(endpoints, workdir, nudges)
            results["notifier_webhook"] = delivery
            print(
                f"  {delivery['delivered_per_second']:,.0f} delivered prompts/s "
                f"({delivery['delivered']} in {delivery['seconds']:.1f}s; "
                f"notifier peak RSS {delivery['notifier_peak_rss_mib'] or 0:.0f} MiB)",
                flush=True,
            )
        if part == "notifier":
            if out is not None:
                out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            return 0
        sizes = [envelope_size] if envelope_size == 1 else [envelope_size, 1]
        modes = ["full", "minimal"] if metrics == "both" else [metrics]
        for size in sizes:
            count = events if size > 1 else min(events, 50_000)
            for mode in modes:
                print(
                    f"throughput: {count} events, {size} per message, {mode} metrics ...",
                    flush=True,
                )
                figures = throughput(endpoints, workdir, count, size, mode)
                suffix = "" if mode == "full" else f"_{mode}_metrics"
                results[f"throughput_envelope_{size}{suffix}"] = asdict(figures)
                print(
                    f"  {figures.events_per_second:,.0f} events/s "
                    f"(publish took {figures.publish_seconds:.1f}s; "
                    f"worker peak RSS {figures.worker_peak_rss_mib or 0:.0f} MiB)",
                    flush=True,
                )
        print(f"latency: {rate} events/s for {latency_seconds}s ...", flush=True)
        figures = latency(endpoints, workdir, rate, latency_seconds)
        results["latency"] = asdict(figures)
        lat = figures.latency_ms
        if lat:
            print(
                f"  publish → nudge over {figures.nudges_measured} nudges: "
                f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, "
                f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms",
                flush=True,
            )
        else:
            print("  no nudges were measured", flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def _ingest(
    endpoints: Any, workdir: Path, results: dict[str, Any], options: dict[str, int]
) -> None:
    from stream.dev.bench.ingest import ingest_bench

    statements, batch = options.get("statements", 50_000), options.get("batch", 100)
    rate, seconds = options.get("rate", 500), options.get("seconds", 10)
    print(
        f"ingest: {statements} xAPI statements in arrays of {batch}, then single statements "
        f"at {rate} requests/s for {seconds}s ...",
        flush=True,
    )
    figures = ingest_bench(endpoints, workdir, statements, batch, rate, seconds)
    results["ingest_xapi"] = figures
    lat = figures["latency_ms"]
    print(
        f"  {figures['statements_per_second']:,.0f} statements/s accepted "
        f"(ingest peak RSS {figures['ingest_peak_rss_mib'] or 0:.0f} MiB); single statements: "
        f"p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"max {lat['max']:.1f} ms",
        flush=True,
    )
