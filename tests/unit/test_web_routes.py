"""What the worker's and the notifier's web server would serve, read from the app: no network.

Every route is health, readiness, metrics or the counts-only status page; anything else needs
authentication, which this server does not have, so a new route must be decided on here.
tests/integration/test_web_exposure.py asks the running processes over HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.settings import ENV, load_settings
from stream.app import create_app

# Each route the process serves without authentication, and why that is acceptable.
UNAUTHENTICATED = {
    "/healthz": "liveness",
    "/readyz": "readiness (check names, lag counts)",
    "/metrics": "Prometheus metrics (no per-student label)",
    "/status": "the status page (counts only)",
    "/status.json": "the status page's data (counts only)",
}
# Faust's production index at "/" answers {"status": "OK"}: liveness, nothing else.
FAUST_INDEX = ("", "faust.web.apps.production_index:blueprint")


@pytest.fixture
def apps(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    for name in ("web_bind", "web_port"):
        monkeypatch.delenv(ENV[name], raising=False)
    settings = load_settings(pseudonym_key="unit-test-pseudonym-key-0123")
    built = []
    for role in ("worker", "notifier"):
        app, _ = create_app(
            settings, role, kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0"
        )
        built.append(app)
    return built


def test_only_health_readiness_metrics_and_status_are_served(apps: list[Any]) -> None:
    for app in apps:
        assert set(app.web.views) == set(UNAUTHENTICATED), app.conf.id
        # Faust's /router/, /table/, /graph/, statistics and /performance/ are not mounted.
        assert list(app.web.blueprints._enabled) == [FAUST_INDEX], app.conf.id


def test_the_web_server_binds_to_loopback_unless_configured(
    apps: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for app in apps:
        assert app.conf.web_bind == "127.0.0.1", app.conf.id
    monkeypatch.setenv(ENV["web_bind"], "0.0.0.0")  # noqa: S104  # as in a container
    settings = load_settings(pseudonym_key="unit-test-pseudonym-key-0123")
    app, _ = create_app(
        settings, "worker", kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0"
    )
    assert app.conf.web_bind == "0.0.0.0"  # noqa: S104
