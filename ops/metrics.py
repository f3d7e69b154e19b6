"""Prometheus metrics, created by a factory on a given registry. No label names a person."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_EVENT_AGE_BUCKETS = (1, 5, 30, 60, 300, 900, 3600, 6 * 3600, 86_400, 2 * 86_400, 7 * 86_400)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

if TYPE_CHECKING:
    from schemas.rules import RuleSet
    from schemas.sources import SourceRegistry


@dataclass(frozen=True)
class Metrics:
    """Every metric the worker and the notifier export."""

    registry: CollectorRegistry
    events_received: Counter
    signals_emitted: Counter
    dead_lettered: Counter
    duplicates: Counter
    late_events: Counter
    signals_applied: Counter
    redelivered_messages: Counter
    nudges: Counter
    interventions: Counter
    deliveries: Counter
    redis_waits: Counter
    preference_changes: Counter
    review_open: Gauge
    deferred_waiting: Gauge
    outbox_waiting: Gauge
    delivery_seconds: Histogram
    consumer_lag: Gauge
    committed_offset: Gauge
    event_to_processed_seconds: Histogram
    redis_seconds: Histogram
    broker_seconds: Histogram
    source_health: Gauge
    rules_evaluated: Counter
    ready: Gauge
    source_gaps: Counter
    reference_records: Counter
    closed_day: Gauge
    batch_seconds: Histogram
    publish_to_state_seconds: Histogram
    publish_to_nudge_seconds: Histogram
    offset_regressions: Counter


class _Unmeasured:
    """Stands in for a metric that is switched off: every call does nothing."""

    def labels(self, *args: object, **kwargs: object) -> _Unmeasured:
        return self

    def inc(self, amount: float = 1) -> None:
        """Nothing is counted."""

    def observe(self, amount: float) -> None:
        """Nothing is observed."""

    def set(self, value: float) -> None:
        """Nothing is set."""

    def remove(self, *labels: object) -> None:
        """Nothing to remove."""


# What `ENGAGEMENT_METRICS=minimal` keeps: the counters the bench and the demo read.
MINIMAL: Final = frozenset({"events_received", "signals_applied", "closed_day"})


def create_metrics(registry: CollectorRegistry | None = None, *, minimal: bool = False) -> Metrics:
    """Create the metric set on ``registry`` (a fresh one when None, as tests use). With
    ``minimal`` every metric but those in ``MINIMAL`` is a no-op: only to measure what the
    rest cost (`engagement bench --metrics both`)."""
    reg = registry if registry is not None else CollectorRegistry()
    metrics = _create(reg)
    if not minimal:
        return metrics
    off: Any = _Unmeasured()
    names = [f.name for f in fields(Metrics) if f.name not in MINIMAL | {"registry"}]
    for name in names:
        reg.unregister(getattr(metrics, name))
    return replace(metrics, **dict.fromkeys(names, off))


def _create(reg: CollectorRegistry) -> Metrics:
    return Metrics(
        registry=reg,
        events_received=Counter(
            "engagement_events_received_total", "Raw events received.", ["source"], registry=reg
        ),
        signals_emitted=Counter(
            "engagement_signals_emitted_total",
            "Signals produced by ingest.",
            ["source"],
            registry=reg,
        ),
        dead_lettered=Counter(
            "engagement_deadlettered_total",
            "Inputs refused to the dead-letter topic.",
            ["reason"],
            registry=reg,
        ),
        duplicates=Counter(
            "engagement_duplicates_total",
            "Events dropped because their event_id was seen.",
            registry=reg,
        ),
        late_events=Counter(
            "engagement_late_events_total",
            "Events more than the grace period behind their partition: dead-lettered, not counted.",
            ["source"],
            registry=reg,
        ),
        signals_applied=Counter(
            "engagement_signals_applied_total",
            "Signals applied to per-student state (after de-duplication).",
            registry=reg,
        ),
        redelivered_messages=Counter(
            "engagement_redelivered_messages_total",
            "Signal messages skipped because their offset was already applied.",
            registry=reg,
        ),
        nudges=Counter(
            "engagement_nudges_total", "Nudges emitted.", ["rule", "tier"], registry=reg
        ),
        interventions=Counter(
            "engagement_interventions_total",
            "Intervention records written.",
            ["outcome"],
            registry=reg,
        ),
        deliveries=Counter(
            "engagement_deliveries_total",
            "Deliveries by channel and result (ok, failed, circuit_open).",
            ["channel", "result"],
            registry=reg,
        ),
        redis_waits=Counter(
            "engagement_redis_waits_total",
            "Times work waited because Redis was unavailable.",
            ["stage"],
            registry=reg,
        ),
        preference_changes=Counter(
            "engagement_preference_changes_total",
            "Opt-out changes applied from the preferences topic.",
            registry=reg,
        ),
        review_open=Gauge(
            "engagement_review_open_items",
            "Review items waiting for a member of staff (not yet decided or escalated).",
            registry=reg,
        ),
        deferred_waiting=Gauge(
            "engagement_deferred_prompts",
            "Prompts waiting for the end of quiet hours.",
            registry=reg,
        ),
        outbox_waiting=Gauge(
            "engagement_interventions_outbox",
            "Intervention records written to Redis but not yet acknowledged by the topic.",
            registry=reg,
        ),
        delivery_seconds=Histogram(
            "engagement_delivery_seconds",
            "Time to deliver one message, retries included.",
            ["transport"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        ),
        consumer_lag=Gauge(
            "engagement_consumer_lag",
            "Records behind the partition's high watermark (from fetch responses).",
            ["group", "topic", "partition"],
            registry=reg,
        ),
        committed_offset=Gauge(
            "engagement_consumer_committed_offset",
            "Last committed offset of an assigned partition.",
            ["group", "topic", "partition"],
            registry=reg,
        ),
        event_to_processed_seconds=Histogram(
            "engagement_event_to_processed_seconds",
            "Event time to the ingest decoding it (how late events arrive).",
            ["source"],
            buckets=_EVENT_AGE_BUCKETS,
            registry=reg,
        ),
        redis_seconds=Histogram(
            "engagement_redis_seconds",
            "Time of one Redis step (a script, pipeline or read), by stage.",
            ["stage"],
            buckets=_CALL_BUCKETS,
            registry=reg,
        ),
        broker_seconds=Histogram(
            "engagement_broker_seconds",
            "Time until the broker acknowledged a batch of sends, by stage.",
            ["stage"],
            buckets=_CALL_BUCKETS,
            registry=reg,
        ),
        source_health=Gauge(
            "engagement_source_health",
            "1 when a feed or location behaved normally on the last closed day, 0 for a gap.",
            ["source", "location"],
            registry=reg,
        ),
        rules_evaluated=Counter(
            "engagement_rules_evaluated_total",
            "Rule evaluations (one rule, one student, one closed day).",
            registry=reg,
        ),
        ready=Gauge(
            "engagement_ready",
            "1 when /readyz answers ready (broker and Redis reachable, topics present, "
            "partitions assigned, not stuck).",
            registry=reg,
        ),
        source_gaps=Counter(
            "engagement_source_gaps_total",
            "Data gaps found: a feed or location silent where activity was expected.",
            ["source", "reason"],
            registry=reg,
        ),
        reference_records=Counter(
            "engagement_reference_records_total",
            "Reference records (roster, timetable, exemptions) loaded.",
            ["kind"],
            registry=reg,
        ),
        closed_day=Gauge(
            "engagement_closed_day_timestamp_seconds",
            "Start of the day after the last closed day (decisions are final up to here).",
            registry=reg,
        ),
        batch_seconds=Histogram(
            "engagement_batch_seconds",
            "Time to process one batch.",
            ["stage"],
            buckets=_BATCH_BUCKETS,
            registry=reg,
        ),
        publish_to_state_seconds=Histogram(
            "engagement_publish_to_state_seconds",
            "Publish time of the oldest event in a batch to its state being applied.",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        ),
        publish_to_nudge_seconds=Histogram(
            "engagement_publish_to_nudge_seconds",
            "Publish time of the newest event of the batch that closed a day to its nudges.",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        ),
        offset_regressions=Counter(
            "engagement_offset_regressions_total",
            "Partitions found behind the offsets already processed from them: the broker lost "
            "its log or the topic was created again.",
            ["group", "topic", "partition"],
            registry=reg,
        ),
    )


GAP_REASONS = ("silent_against_pattern", "door_silent_during_session", "register_without_marks")


def initialise_labels(
    metrics: Metrics,
    role: str,
    rules: RuleSet | None = None,
    sources: SourceRegistry | None = None,
) -> None:
    """Create the series every dashboard panel and alert reads, at zero, so that a query for
    a rate that has not happened yet answers 0 instead of nothing (and ``increase`` sees the
    first event). Only fixed values: every registered source (``sources``, default all of
    ``schemas.sources.SOURCES``), reasons, outcomes, channels, stages, rules."""
    from schemas.common import Reason  # schemas import nothing from ops
    from schemas.interventions import Outcome
    from schemas.sources import SOURCES

    for source in sources if sources is not None else SOURCES:
        label = str(source)
        metrics.events_received.labels(label)
        metrics.signals_emitted.labels(label)
        metrics.late_events.labels(label)
        for gap in GAP_REASONS:
            metrics.source_gaps.labels(label, gap)
    for reason in Reason:
        metrics.dead_lettered.labels(reason.value)
    stages = (
        ("ingest", "state", "detect", "reference")
        if role == "worker"
        else ("notify", "preferences", "deferred")
    )
    for stage in stages:
        metrics.redis_waits.labels(stage)
    if role == "worker" and rules is not None:
        for rule in rules.rules:
            metrics.nudges.labels(rule.id, rule.tier.value)
    if role == "notifier":
        for outcome in Outcome:
            metrics.interventions.labels(outcome.value)
        for channel in ("email", "sms", "app"):
            for result in ("ok", "failed", "circuit_open"):
                metrics.deliveries.labels(channel, result)
