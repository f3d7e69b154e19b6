"""The built-in status page: ``/status`` (one self-contained HTML page) and ``/status.json``.

The JSON is read from the process's own Prometheus registry (no HTTP to itself). Every metric
is grouped by a fixed list of label names; any other label is summed away, so a label that
might one day name a person can never reach the page. The page polls the JSON every 2 s and
computes rates from successive totals itself, so the server keeps no history.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from ops.status_page import JSON_HEADERS, PAGE, PAGE_HEADERS
from schemas.sources import SOURCES

SCHEMA_VERSION = 1
QUANTILES = (0.5, 0.95, 0.99)

Samples = Mapping[str, Sequence[tuple[Mapping[str, str], float]]]
"""Sample name → (labels, value) of every sample in a registry."""

# Counters shown on the page: JSON key → (sample name, the only labels it is grouped by).
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "events_received": ("engagement_events_received_total", ("source",)),
    "signals_emitted": ("engagement_signals_emitted_total", ("source",)),
    "signals_applied": ("engagement_signals_applied_total", ()),
    "dead_lettered": ("engagement_deadlettered_total", ("reason",)),
    "duplicates": ("engagement_duplicates_total", ()),
    "late_events": ("engagement_late_events_total", ("source",)),
    "nudges": ("engagement_nudges_total", ("rule", "tier")),
    "interventions": ("engagement_interventions_total", ("outcome",)),
    "source_gaps": ("engagement_source_gaps_total", ("source", "reason")),
}
LATENCIES = {
    "publish_to_state": "engagement_publish_to_state_seconds",
    "publish_to_nudge": "engagement_publish_to_nudge_seconds",
}
LAG = ("engagement_consumer_lag", ("topic",))
SOURCE_HEALTH = ("engagement_source_health", ("source", "location"))
CLOSED_DAY = "engagement_closed_day_timestamp_seconds"

KNOWN_LABELS = frozenset(
    {name for _, names in COUNTERS.values() for name in names} | set(LAG[1]) | set(SOURCE_HEALTH[1])
)
"""Every label name whose values may appear in /status.json."""


# reading the registry ----------------------------------------------------------------------
def read_samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of ``registry`` by sample name (``..._total``, ``..._bucket``, gauges)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def group(samples: Samples, name: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
    """Sum one sample name's values per combination of the ``by`` labels (others summed away)."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in samples.get(name, ()):
        if math.isnan(value):
            continue
        key = tuple(labels.get(label, "") for label in by)
        out[key] = out.get(key, 0.0) + value
    return out


def _number(value: float) -> float | int:
    """Counts as ints, so that the JSON reads ``12``, not ``12.0``."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _by_one(grouped: Mapping[tuple[str, ...], float]) -> dict[str, float | int]:
    return {key[0]: _number(value) for key, value in sorted(grouped.items())}


# latency -----------------------------------------------------------------------------------
def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Estimate the ``q`` quantile from cumulative buckets ``(upper bound, count)``.

    As PromQL's ``histogram_quantile``: linear interpolation inside the bucket the rank falls
    in (the first bucket starts at 0), and the highest finite bound when the rank falls in
    ``+Inf``. None when there are no observations.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    finite = False
    for upper, count in ordered:
        if math.isinf(upper):
            break
        finite = True
        if count >= rank:
            if count == below:
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower if finite else None


def latency(samples: Samples, name: str) -> dict[str, float | int | None]:
    """p50/p95/p99 (seconds) of one histogram, its sample count and its highest finite bound."""
    buckets = [
        (float(le), count) for (le,), count in group(samples, f"{name}_bucket", ("le",)).items()
    ]
    finite = [upper for upper, _ in buckets if not math.isinf(upper)]
    out: dict[str, float | int | None] = {
        f"p{round(q * 100)}": histogram_quantile(q, buckets) for q in QUANTILES
    }
    out["count"] = _number(sum(group(samples, f"{name}_count", ()).values()))
    out["max_bucket"] = max(finite) if finite else None
    return out


# sources -----------------------------------------------------------------------------------
def source_health(samples: Samples, role: str) -> list[dict[str, Any]]:
    """One row per feed: its health gauge (1 normal, 0 gap), events received and gaps found."""
    received = _by_one(group(samples, COUNTERS["events_received"][0], ("source",)))
    health = group(samples, *SOURCE_HEALTH)
    gaps = group(samples, *COUNTERS["source_gaps"])
    # The worker always lists the feeds it accepts, so that a silent feed still shows.
    names = {str(s) for s in SOURCES} if role == "worker" else set()
    names |= set(received) | {key[0] for key in health} | {key[0] for key in gaps}
    rows = []
    for source in sorted(names):
        locations = {loc: value for (src, loc), value in health.items() if src == source}
        quiet = sorted(loc or "(all)" for loc, value in locations.items() if value < 1)
        by_reason = {r: _number(v) for (src, r), v in sorted(gaps.items()) if src == source}
        status = "gap" if quiet else "normal" if locations else "not reported"
        rows.append(
            {
                "source": source,
                "status": status,
                "locations": len(locations),
                "quiet_locations": quiet,
                "events_received": received.get(source, 0),
                "gaps": by_reason,
                "gaps_total": _number(sum(by_reason.values())),
            }
        )
    return rows


# the whole snapshot ------------------------------------------------------------------------
def build_status(registry: CollectorRegistry, *, role: str, now: float) -> dict[str, Any]:
    """What /status.json returns: totals, breakdowns, latency, lag and source health.

    Pure: reads ``registry`` once and takes the time as an argument. Metrics that a process
    does not have (lag, source health) are reported as absent, not as zero.
    """
    samples = read_samples(registry)
    counters = {key: group(samples, *spec) for key, spec in COUNTERS.items()}
    lag = group(samples, *LAG)
    closed = sum(group(samples, CLOSED_DAY, ()).values())
    return {
        "schema_version": SCHEMA_VERSION,
        "role": role,
        "server_time": now,
        "totals": {key: _number(sum(g.values())) for key, g in counters.items()},
        "events_received": _by_one(counters["events_received"]),
        "dead_lettered": _by_one(counters["dead_lettered"]),
        "late_events": _by_one(counters["late_events"]),
        "interventions": _by_one(counters["interventions"]),
        "nudges": [
            {"rule": rule, "tier": tier, "count": _number(value)}
            for (rule, tier), value in sorted(counters["nudges"].items(), key=lambda kv: -kv[1])
        ],
        "latency": {key: latency(samples, name) for key, name in LATENCIES.items()},
        "lag": {
            "reported": LAG[0] in samples,
            "total": _number(sum(lag.values())) if LAG[0] in samples else None,
            "by_topic": _by_one(lag),
        },
        "sources": source_health(samples, role),
        "closed_day": closed if closed > 0 else None,
    }


def status_json(registry: CollectorRegistry, *, role: str, now: float) -> str:
    """``build_status`` as strict JSON (no NaN)."""
    return json.dumps(build_status(registry, role=role, now=now), allow_nan=False)


# wiring ------------------------------------------------------------------------------------
def register_status_pages(app: Any, registry: CollectorRegistry, role: str | None = None) -> None:
    """Add ``/status`` (the page) and ``/status.json`` (its data) to a Faust app's web server.

    ``role`` defaults to the end of the app id (``<prefix>engagement-worker`` → ``worker``).
    """
    name = role or str(app.conf.id).rsplit("engagement-", 1)[-1]

    @app.page("/status")  # type: ignore[untyped-decorator]  # faust is untyped
    async def status_page(web: Any, request: Any) -> Any:
        return web.html(PAGE, headers=dict(PAGE_HEADERS))

    @app.page("/status.json")  # type: ignore[untyped-decorator]  # faust is untyped
    async def status_data(web: Any, request: Any) -> Any:
        body = status_json(registry, role=name, now=time.time())
        return web.text(body, content_type="application/json", headers=dict(JSON_HEADERS))
