"""The status page's data: read from a fresh registry, grouped, percentiles interpolated."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ops.metrics import Metrics, create_metrics
from ops.status import (
    KNOWN_LABELS,
    PAGE,
    PAGE_HEADERS,
    histogram_quantile,
    status_json,
)

NOW = 1_790_000_000.0


@pytest.fixture
def metrics() -> Metrics:
    return create_metrics()


def snapshot(registry: CollectorRegistry, role: str = "worker") -> dict[str, Any]:
    # Through JSON, as the page receives it.
    loaded: dict[str, Any] = json.loads(status_json(registry, role=role, now=NOW))
    return loaded


# percentiles --------------------------------------------------------------------------------
def test_quantile_interpolates_linearly_inside_the_bucket_like_histogram_quantile() -> None:
    buckets = [(1.0, 10.0), (2.0, 20.0), (float("inf"), 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.75, buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.5)  # first bucket starts at 0


def test_quantile_in_the_open_top_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(1.0, 5.0), (float("inf"), 10.0)]) == 1.0


def test_quantile_of_an_empty_histogram_is_none() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_latency_percentiles_come_from_the_histograms(metrics: Metrics) -> None:
    for _ in range(90):
        metrics.publish_to_state_seconds.observe(0.2)  # bucket (0.1, 0.25]
    for _ in range(10):
        metrics.publish_to_state_seconds.observe(4.0)  # bucket (2.5, 5]
    latency = snapshot(metrics.registry)["latency"]
    state = latency["publish_to_state"]
    assert state["count"] == 100
    assert state["p50"] == pytest.approx(0.1 + 0.15 * 50 / 90)
    assert state["p95"] == pytest.approx(2.5 + 2.5 * 5 / 10)
    assert state["p99"] == pytest.approx(2.5 + 2.5 * 9 / 10)
    assert state["max_bucket"] == 60
    nudge = latency["publish_to_nudge"]
    assert nudge == {"p50": None, "p95": None, "p99": None, "count": 0, "max_bucket": 60}


# counters -----------------------------------------------------------------------------------
def test_counters_are_totals_per_label_set(metrics: Metrics) -> None:
    metrics.events_received.labels("vle").inc(30)
    metrics.events_received.labels("swipe").inc(12)
    metrics.signals_applied.inc(40)
    metrics.dead_lettered.labels("malformed_json").inc(2)
    metrics.dead_lettered.labels("late").inc()
    metrics.duplicates.inc(3)
    metrics.late_events.labels("vle").inc()
    metrics.nudges.labels("no_vle_activity_7d", "email").inc(2)
    metrics.nudges.labels("attendance_below_50pct_14d", "tutor").inc()
    metrics.interventions.labels("delivered").inc(4)
    status = snapshot(metrics.registry)
    assert status["totals"] == {
        "events_received": 42,
        "signals_emitted": 0,
        "signals_applied": 40,
        "dead_lettered": 3,
        "duplicates": 3,
        "late_events": 1,
        "nudges": 3,
        "interventions": 4,
        "source_gaps": 0,
    }
    assert status["events_received"] == {"swipe": 12, "vle": 30}
    assert status["dead_lettered"] == {"late": 1, "malformed_json": 2}
    assert status["late_events"] == {"vle": 1}
    assert status["interventions"] == {"delivered": 4}
    assert status["nudges"] == [
        {"rule": "no_vle_activity_7d", "tier": "email", "count": 2},
        {"rule": "attendance_below_50pct_14d", "tier": "tutor", "count": 1},
    ]
    assert status["role"] == "worker"
    assert status["server_time"] == NOW
    assert status["schema_version"] == 1


def test_closed_day_is_none_until_a_day_closes(metrics: Metrics) -> None:
    assert snapshot(metrics.registry)["closed_day"] is None
    metrics.closed_day.set(1_791_000_000)
    assert snapshot(metrics.registry)["closed_day"] == 1_791_000_000


# lag and source health ----------------------------------------------------------------------
def test_missing_lag_and_health_metrics_are_reported_absent_not_zero(metrics: Metrics) -> None:
    status = snapshot(metrics.registry)
    assert status["lag"] == {"reported": False, "total": None, "by_topic": {}}
    sources = status["sources"]
    assert [s["source"] for s in sources] == ["attendance", "library", "swipe", "vle"]
    assert {s["status"] for s in sources} == {"not reported"}


def test_an_empty_registry_still_gives_a_complete_snapshot() -> None:
    status = snapshot(CollectorRegistry(), role="notifier")
    assert status["sources"] == []  # the notifier lists no feed it does not read
    assert status["totals"] == dict.fromkeys(status["totals"], 0)
    assert status["latency"]["publish_to_state"]["p50"] is None


def test_lag_is_summed_per_topic_over_partitions_and_groups(metrics: Metrics) -> None:
    lag = metrics.consumer_lag
    lag.labels("g", "p.signals", "0").set(5)
    lag.labels("g", "p.signals", "1").set(7)
    lag.labels("g", "p.vle", "0").set(0)
    assert snapshot(metrics.registry)["lag"] == {
        "reported": True,
        "total": 12,
        "by_topic": {"p.signals": 12, "p.vle": 0},
    }


def test_source_health_shows_quiet_locations_and_gaps(metrics: Metrics) -> None:
    health = metrics.source_health
    health.labels("swipe", "Library").set(0)
    health.labels("swipe", "Science").set(1)
    health.labels("vle", "").set(1)
    metrics.source_gaps.labels("swipe", "pattern").inc(2)
    metrics.source_gaps.labels("swipe", "doors").inc()
    metrics.events_received.labels("swipe").inc(9)
    rows = {r["source"]: r for r in snapshot(metrics.registry)["sources"]}
    assert rows["swipe"] == {
        "source": "swipe",
        "status": "gap",
        "locations": 2,
        "quiet_locations": ["Library"],
        "events_received": 9,
        "gaps": {"doors": 1, "pattern": 2},
        "gaps_total": 3,
    }
    assert rows["vle"]["status"] == "normal"
    assert rows["attendance"]["status"] == "not reported"


# privacy ------------------------------------------------------------------------------------
def test_a_label_the_page_does_not_know_never_reaches_it() -> None:
    registry = CollectorRegistry()
    dead = Counter("engagement_deadlettered", "x", ["reason", "student_id"], registry=registry)
    dead.labels("malformed_json", "S-1234567").inc()
    dead.labels("malformed_json", "S-7654321").inc()
    nudges = Counter("engagement_nudges", "x", ["rule", "tier", "staff_id"], registry=registry)
    nudges.labels("r", "email", "STAFF-42").inc()
    lag = Gauge("engagement_consumer_lag", "x", ["topic", "student"], registry=registry)
    lag.labels("p.signals", "S-1234567").set(3)
    latency = Histogram("engagement_publish_to_state_seconds", "x", ["student"], registry=registry)
    latency.labels("S-1234567").observe(0.3)
    text = status_json(registry, role="worker", now=NOW)
    for value in ("S-1234567", "S-7654321", "STAFF-42", "student", "staff"):
        assert value not in text
    status = json.loads(text)
    assert status["dead_lettered"] == {"malformed_json": 2}  # summed, not split by person
    assert status["lag"]["by_topic"] == {"p.signals": 3}
    assert status["latency"]["publish_to_state"]["count"] == 1


def test_only_known_label_names_are_read() -> None:
    assert {"source", "reason", "rule", "tier", "outcome", "topic", "location"} == KNOWN_LABELS


# the page -----------------------------------------------------------------------------------
def test_the_page_is_self_contained_and_its_policy_allows_only_its_own_code() -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", PAGE)
    assert "@import" not in PAGE
    assert '<svg id="throughput"' in PAGE
    assert 'data-latest-events-per-second=""' in PAGE
    policy = PAGE_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    # The hashes are computed from the inline code, so an edit can never leave them stale.
    assert PAGE.count("<script>") == 1
    assert PAGE.count("<style>") == 1
    assert len(re.findall(r"'sha256-[A-Za-z0-9+/=]{44}'", policy)) == 2
