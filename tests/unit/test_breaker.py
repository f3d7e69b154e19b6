"""The circuit breaker's state machine, on an injected clock (no sleeps, no network)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sinks.channels.breaker import CircuitBreaker


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(threshold: int = 3, reset: float = 30.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(failure_threshold=threshold, reset_after_s=reset, clock=clock), clock


def test_closed_breaker_allows_and_opens_after_threshold_consecutive_failures() -> None:
    cb, _ = breaker(threshold=3)
    assert cb.state == "closed"
    assert cb.retry_in_s() == 0.0
    for _ in range(2):
        assert cb.allow()
        cb.record_failure()
    assert cb.state == "closed"
    assert cb.allow()
    cb.record_failure()
    assert cb.state == "open"
    assert not cb.allow()


def test_a_success_resets_the_consecutive_count() -> None:
    cb, _ = breaker(threshold=3)
    for _ in range(2):
        cb.record_failure()
    cb.record_success()
    for _ in range(2):
        cb.record_failure()
    assert cb.state == "closed"
    cb.record_failure()
    assert cb.state == "open"


def test_open_breaker_refuses_until_reset_then_allows_one_trial() -> None:
    cb, clock = breaker(threshold=1, reset=30.0)
    cb.record_failure()
    assert cb.retry_in_s() == pytest.approx(30.0)
    clock.now += 29.5
    assert cb.state == "open"
    assert not cb.allow()
    assert cb.retry_in_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert cb.state == "half_open"
    assert cb.retry_in_s() == 0.0
    assert cb.allow()
    # The trial is in flight: nobody else gets through, and the wait is the trial's lease.
    assert not cb.allow()
    assert cb.retry_in_s() == pytest.approx(30.0)


def test_trial_success_closes() -> None:
    cb, clock = breaker(threshold=1)
    cb.record_failure()
    clock.now += 30.0
    assert cb.allow()
    cb.record_success()
    assert cb.state == "closed"
    assert cb.allow()
    assert cb.allow()


def test_trial_failure_reopens_with_a_fresh_wait() -> None:
    cb, clock = breaker(threshold=2, reset=30.0)
    cb.record_failure()
    cb.record_failure()
    clock.now += 31.0
    assert cb.allow()
    cb.record_failure()  # one failure is enough in half-open
    assert cb.state == "open"
    assert cb.retry_in_s() == pytest.approx(30.0)
    clock.now += 29.0
    assert not cb.allow()


def test_results_of_calls_admitted_before_opening_are_ignored_while_open() -> None:
    cb, clock = breaker(threshold=1, reset=30.0)
    cb.record_failure()
    clock.now += 10.0
    cb.record_success()  # a slow delivery that started while closed
    cb.record_failure()
    assert cb.state == "open"
    assert cb.retry_in_s() == pytest.approx(20.0)  # the wait was not extended either


def test_a_lost_trial_expires_so_the_breaker_cannot_stick_half_open() -> None:
    cb, clock = breaker(threshold=1, reset=30.0)
    cb.record_failure()
    clock.now += 30.0
    assert cb.allow()  # the trial's task is then cancelled and never reports back
    clock.now += 29.0
    assert not cb.allow()
    clock.now += 1.0
    assert cb.allow()


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0), (1, -5.0)])
def test_nonsense_settings_are_refused(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failure_threshold=threshold, reset_after_s=reset)


_ops = st.lists(
    st.one_of(
        # Clock steps as fractions of reset_after_s, often just short of or past the boundary.
        st.tuples(
            st.just("advance"),
            st.sampled_from([0.5, 0.9, 0.99, 0.999, 1.0, 1.001])
            | st.floats(min_value=0.0, max_value=1.2),
        ),
        st.tuples(st.just("allow"), st.just(0.0)),
        st.tuples(st.just("success"), st.just(0.0)),
        st.tuples(st.just("failure"), st.just(0.0)),
    ),
    max_size=80,
)


@settings(max_examples=500, deadline=None)
@example(ops=[("failure", 0.0), ("advance", 0.95), ("allow", 0.0)], threshold=1, reset=10.0)
@given(
    ops=_ops,
    threshold=st.integers(min_value=1, max_value=4),
    reset=st.floats(min_value=0.5, max_value=40.0),
)
def test_never_allows_a_call_while_open_before_reset(
    ops: list[tuple[str, float]], threshold: int, reset: float
) -> None:
    cb, clock = breaker(threshold=threshold, reset=reset)
    opened_at: float | None = None
    for op, amount in ops:
        before = cb.state
        if op == "advance":
            clock.now += amount * reset
        elif op == "allow":
            allowed = cb.allow()
            if opened_at is not None and clock.now - opened_at < reset:
                assert not allowed, f"allowed {clock.now - opened_at:.3f}s after opening"
            if before == "closed":
                assert allowed
        elif op == "success":
            cb.record_success()
        else:
            cb.record_failure()
            if before != "open" and cb.state == "open":
                opened_at = clock.now
        if cb.state == "open":
            assert 0.0 < cb.retry_in_s() <= reset
