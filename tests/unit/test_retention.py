"""The retention planner, the erasure's receipt and tombstone, and their settings (pure)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from schemas.keys import ERASURE_RECEIPT, REGISTER, KeyFamily, Retention
from schemas.retention_settings import RetentionSettings
from sinks.retention.job import RetentionReport
from sinks.retention.plan import (
    closed_expired,
    cutoff,
    dated_expired,
    entry_time,
    expired_head,
    periods,
    targets,
    withdrawn_past_grace,
)
from sinks.retention.tombstone import (
    ErasureError,
    ErasureTombstone,
    check_reason,
    new_tombstone_id,
    receipt_id,
)

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
PSEUDONYM = "p_" + "a" * 32


def row(days_ago: float, field: str = "decided_at", **extra: object) -> str:
    return json.dumps({field: (NOW - timedelta(days=days_ago)).isoformat(), **extra})


# -- which families the job visits ------------------------------------------------------------


def test_a_class_without_a_period_is_never_touched() -> None:
    visited = targets(periods(interventions=30))
    assert visited
    assert {t.family.retention for t in visited} == {Retention.INTERVENTIONS}
    assert targets(periods(interventions=None)) == []


def test_every_family_of_a_class_is_visited_by_its_shape_a_new_one_too() -> None:
    extra = KeyFamily(
        "future", "{p}:future:{pseudonym}", "list", "a family added later", "name",
        Retention.REVIEW, "none", "pseudonym",
    )  # fmt: skip
    visited = {t.family.name: t for t in targets(periods(review=10), (*REGISTER, extra))}
    assert visited["future"].shape == "head"
    assert visited["review_item"].shape == "closed"
    assert visited["review_item"].days == 10
    # The queues hold only ids: they are cleaned with the items, never expired on their own.
    assert "review_queue" not in visited


def test_the_receipts_expire_with_the_interventions_class_the_outbox_never() -> None:
    visited = {t.family.name: t for t in targets(periods(interventions=365))}
    assert visited[ERASURE_RECEIPT.name].shape == "dated"
    assert visited["interventions"].shape == "head"
    assert "outbox" not in visited  # its publisher trims it: an age trim would race with it


def test_per_student_state_with_its_own_expiry_is_left_alone() -> None:
    everything = periods(**{c.value: 1 for c in Retention})
    names = {t.family.name for t in targets(everything)}
    assert not names & {"state", "seen", "ukvi", "roster", "exemptions", "preferences"}


# -- ages -------------------------------------------------------------------------------------


def test_an_entry_is_dated_by_the_first_time_field_it_has() -> None:
    assert entry_time(row(3)) == NOW - timedelta(days=3)
    assert entry_time(row(5, "at")) == NOW - timedelta(days=5)
    assert entry_time(row(5, "queued_at")) == NOW - timedelta(days=5)
    assert entry_time((NOW - timedelta(days=1)).isoformat()) == NOW - timedelta(days=1)


@pytest.mark.parametrize(
    "value",
    [None, "", "1", "not json", "[1, 2]", '{"decided_at": "2026-01-01T00:00:00"}', '{"x": 1}',
     '{"at": 17}', b"\xff\xfe"],
)  # fmt: skip
def test_an_undated_or_naive_entry_has_no_time(value: str | bytes | None) -> None:
    assert entry_time(value) is None


def test_the_expired_head_of_a_list_stops_at_the_first_newer_or_undated_entry() -> None:
    before = cutoff(NOW, 30)
    assert expired_head([row(90), row(40), row(31), row(10), row(50)], before) == 3
    assert expired_head([row(90), "undated", row(80)], before) == 1
    assert expired_head([row(10)], before) == 0
    assert expired_head([], before) == 0
    assert expired_head([row(30)], before) == 0  # exactly the period old is kept


def test_a_decided_item_goes_when_its_newest_time_is_old_an_open_one_never() -> None:
    before = cutoff(NOW, 30)
    item = {"item": row(90, "queued_at"), "escalated_at": (NOW - timedelta(days=60)).isoformat()}
    assert closed_expired({**item, "decided": "1"}, before)
    assert not closed_expired(item, before)  # undecided: still waiting for staff
    assert not closed_expired({**item, "decided": "0"}, before)
    fresh = {**item, "escalated_at": (NOW - timedelta(days=2)).isoformat(), "decided": "1"}
    assert not closed_expired(fresh, before)
    assert not closed_expired({"decided": "1", "item": "{}"}, before)  # undated: kept


def test_a_dated_value_goes_after_its_period() -> None:
    before = cutoff(NOW, 365)
    assert dated_expired(row(400, "erased_at"), before)
    assert not dated_expired(row(10, "erased_at"), before)
    assert not dated_expired("1", before)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        cutoff(datetime(2027, 1, 1), 1)  # noqa: DTZ001 - the mistake under test


# -- withdrawn past the grace -----------------------------------------------------------------


def exemption(kind: str, start: date, end: date | None = None) -> str:
    return json.dumps(
        {"kind": kind, "start": start.toordinal(), "end": end.toordinal() if end else None}
    )


def test_withdrawn_for_longer_than_the_grace_is_erased_within_it_not() -> None:
    today = date(2027, 6, 1)
    assert withdrawn_past_grace({"e1": exemption("withdrawn", date(2027, 4, 1))}, today, 30)
    assert not withdrawn_past_grace({"e1": exemption("withdrawn", date(2027, 5, 10))}, today, 30)
    assert not withdrawn_past_grace({"e1": exemption("withdrawn", date(2027, 5, 2))}, today, 30)
    assert withdrawn_past_grace({"e1": exemption("withdrawn", date(2027, 5, 1))}, today, 30)
    assert withdrawn_past_grace({"e1": exemption("withdrawn", date(2027, 5, 31))}, today, 0)


def test_other_exemptions_a_reversed_withdrawal_and_junk_erase_nobody() -> None:
    today = date(2027, 6, 1)
    long_ago = date(2026, 1, 1)
    assert not withdrawn_past_grace({"e1": exemption("placement", long_ago)}, today, 30)
    reversed_ = exemption("withdrawn", long_ago, date(2026, 3, 1))
    assert not withdrawn_past_grace({"e1": reversed_}, today, 30)
    junk = {"a": "not json", "b": "[]", "c": '{"kind": "withdrawn", "start": "x"}'}
    assert not withdrawn_past_grace(junk, today, 30)
    assert not withdrawn_past_grace({"c": '{"kind": "withdrawn", "start": true}'}, today, 0)


# -- the receipt and the tombstone ------------------------------------------------------------


def test_the_receipt_id_is_keyed_stable_and_not_the_pseudonym() -> None:
    key = SecretStr("k" * 32)
    first = receipt_id(key, PSEUDONYM)
    assert first == receipt_id(key, PSEUDONYM)
    assert first.startswith("e_")
    assert len(first) == 34
    assert PSEUDONYM[2:] not in first
    assert ERASURE_RECEIPT.pattern("es").match(f"es:erased:{first}")
    assert first != receipt_id(SecretStr("other" * 8), PSEUDONYM)
    assert first != receipt_id(key, "p_" + "b" * 32)
    # The pseudonymiser's HMAC of the same text under the same key is not the receipt id.
    assert first[2:] != PSEUDONYM[2:]


def test_the_tombstone_names_nobody() -> None:
    tombstone = ErasureTombstone(
        tombstone_id=new_tombstone_id(), erased_at=NOW, reason="erasure request 114"
    )
    payload = json.loads(tombstone.model_dump_json())
    assert set(payload) == {
        "schema_version", "kind", "tombstone_id", "erased_at", "reason", "keys_deleted",
    }  # fmt: skip
    assert payload["kind"] == "erasure"
    assert new_tombstone_id() != new_tombstone_id()
    with pytest.raises(ValidationError):
        ErasureTombstone.model_validate({**payload, "pseudonym": PSEUDONYM})


def test_a_reason_that_names_the_student_is_refused() -> None:
    assert check_reason("  compliance\nrequest  114 ", "S1", PSEUDONYM) == "compliance request 114"
    with pytest.raises(ErasureError, match="must not name"):
        check_reason("request from s1234", "S1234", PSEUDONYM)
    with pytest.raises(ErasureError, match="must not name"):
        check_reason(f"erase {PSEUDONYM}", None, PSEUDONYM)
    with pytest.raises(ErasureError, match="give a reason"):
        check_reason("   ", "S1", PSEUDONYM)
    with pytest.raises(ErasureError, match="longer"):
        check_reason("x" * 201, "S1", PSEUDONYM)


# -- settings and the report ------------------------------------------------------------------


def test_settings_defaults_keep_every_class_shorter_than_the_ukvi_record() -> None:
    from schemas.report_settings import UKVI_RETENTION_DAYS

    defaults = RetentionSettings()
    for days in (
        defaults.retain_interventions_days,
        defaults.retain_review_days,
        defaults.retain_preferences_days,
    ):
        assert days is not None
        assert days < UKVI_RETENTION_DAYS
    assert defaults.erasure_grace_days == 30
    assert defaults.retention_interval_s == 86_400


def test_settings_read_their_variables_and_off_leaves_a_class_alone() -> None:
    found = RetentionSettings.model_validate(
        {
            "ENGAGEMENT_RETAIN_INTERVENTIONS_DAYS": "90",
            "ENGAGEMENT_RETAIN_REVIEW_DAYS": "off",
            "ENGAGEMENT_RETAIN_PREFERENCES_DAYS": "",
            "ENGAGEMENT_ERASURE_GRACE_DAYS": "0",
        }
    )
    assert found.retain_interventions_days == 90
    assert found.retain_review_days is None
    assert found.retain_preferences_days is None
    assert found.erasure_grace_days == 0
    with pytest.raises(ValidationError):
        RetentionSettings.model_validate({"ENGAGEMENT_RETAIN_REVIEW_DAYS": "0"})
    with pytest.raises(ValidationError):
        RetentionSettings.model_validate({"ENGAGEMENT_ERASURE_GRACE_DAYS": "-1"})


def test_the_report_prints_counts_per_class_and_names_nobody() -> None:
    report = RetentionReport(dry_run=True, erased=2)
    report.expired[Retention.REVIEW] = 3
    lines = report.lines(periods(review=180, interventions=365))
    assert lines == [
        "interventions: would expire 0 (older than 365 days)",
        "review: would expire 3 (older than 180 days)",
        "withdrawn past the grace period: would erase 2 student(s)",
    ]
