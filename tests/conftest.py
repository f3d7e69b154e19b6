"""Shared fixtures: one embedded broker + Redis per test session, and per-test name isolation."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import pytest

from stream.dev.stack import Endpoints, LocalStack

# kafka-python 3.0.12 calls the deprecated importlib.resources read_text/open_text while its
# modules load. With filterwarnings = error the first `import kafka` in a test or a collected
# module would fail; import it once here with only that warning silenced (later imports hit
# the module cache).
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(open|read)_text is deprecated", category=DeprecationWarning
    )
    import kafka  # noqa: F401


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Start the session's broker and Redis once (or check external ones) and stop at the end."""
    local = LocalStack(
        tmp_path_factory.mktemp("stack"),
        kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def stack(local_stack: LocalStack) -> Endpoints:
    """Return where the session's broker and Redis answer."""
    return local_stack.endpoints


@pytest.fixture
def prefix() -> str:
    """Return a unique name prefix, so each test's topics, groups and keys stay its own."""
    return f"t{uuid.uuid4().hex[:10]}"
