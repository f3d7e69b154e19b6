"""Integration fixtures: a fresh deployment per test on the session's broker and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.dev.stack import Endpoints
from tests.integration.harness import Pipeline


@pytest.fixture
def pipeline(stack: Endpoints, prefix: str, tmp_path: Path) -> Iterator[Pipeline]:
    """A fresh deployment (own topics, keys and pseudonym key) for one test."""
    deployment = Pipeline(stack, prefix, tmp_path)
    try:
        yield deployment
    finally:
        deployment.stop()
