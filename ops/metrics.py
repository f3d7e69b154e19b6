"""Prometheus metrics, created by a factory on a given registry. No label names a person."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


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
    source_gaps: Counter
    reference_records: Counter
    closed_day: Gauge
    batch_seconds: Histogram
    publish_to_state_seconds: Histogram
    publish_to_nudge_seconds: Histogram


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the metric set on ``registry`` (a fresh one when None, as tests use)."""
    reg = registry if registry is not None else CollectorRegistry()
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
            "Review items waiting for a member of staff.",
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
    )
