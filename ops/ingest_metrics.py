"""Prometheus metrics of the HTTP ingest service. Labels name senders, formats and reasons,
never a person."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class IngestMetrics:
    """Every metric ``engagement ingest`` exports."""

    registry: CollectorRegistry
    units: Counter
    requests: Counter
    request_seconds: Histogram


def create_ingest_metrics(registry: CollectorRegistry | None = None) -> IngestMetrics:
    """The metric set on ``registry`` (a fresh one when None)."""
    reg = registry if registry is not None else CollectorRegistry()
    return IngestMetrics(
        registry=reg,
        units=Counter(
            "engagement_ingest_units_total",
            "Units (statements, events, rows) received over HTTP, by what became of them.",
            ["sender", "format", "outcome", "reason"],
            registry=reg,
        ),
        requests=Counter(
            "engagement_ingest_requests_total",
            "HTTP requests to the ingest service, by endpoint and status code.",
            ["endpoint", "status"],
            registry=reg,
        ),
        request_seconds=Histogram(
            "engagement_ingest_request_seconds",
            "Time from a request's arrival to its reply, broker acknowledgement included.",
            ["endpoint"],
            buckets=_REQUEST_BUCKETS,
            registry=reg,
        ),
    )
