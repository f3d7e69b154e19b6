"""A circuit breaker for one delivery channel: stop calling a service that keeps failing.

Closed: every delivery is allowed; ``failure_threshold`` consecutive failed deliveries open
it. Open: nothing is allowed until ``reset_after_s`` has passed. Half-open: one trial
delivery is allowed; its success closes the breaker, its failure opens it again. Pure (the
clock is injected), so the state machine is unit-tested without a network or sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open trial."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            msg = f"failure_threshold must be at least 1, got {failure_threshold}"
            raise ValueError(msg)
        if not reset_after_s > 0:
            msg = f"reset_after_s must be positive, got {reset_after_s}"
            raise ValueError(msg)
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        # When the half-open trial was handed out. The trial is a lease that expires after
        # reset_after_s: a trial whose result never comes back (its task was cancelled) must
        # not leave the breaker half-open with no call ever allowed again.
        self._trial_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """Where the breaker is now; open turns into half-open by the clock alone."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_after_s:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """May a delivery start now? In half-open, True for exactly one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        now = self._clock()
        if self._trial_at is None or now - self._trial_at >= self.reset_after_s:
            self._trial_at = now
            return True
        return False

    def record_success(self) -> None:
        """The service answered: close the breaker (ignored while open, as a stale result)."""
        if self.state == "open":
            return
        self._failures = 0
        self._opened_at = None
        self._trial_at = None

    def record_failure(self) -> None:
        """A delivery failed on a retryable error after all its attempts."""
        state = self.state
        if state == "open":
            # A delivery admitted before the breaker opened; it must not extend the wait.
            return
        if state == "half_open":
            self._open()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open()

    def retry_in_s(self) -> float:
        """Seconds until ``allow()`` may say yes again (0 when it would now)."""
        state = self.state
        now = self._clock()
        if state == "open" and self._opened_at is not None:
            return max(0.0, self.reset_after_s - (now - self._opened_at))
        if state == "half_open" and self._trial_at is not None:
            return max(0.0, self.reset_after_s - (now - self._trial_at))
        return 0.0

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_at = None
        self._failures = 0
