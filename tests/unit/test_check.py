"""A worker and a notifier on one host: their own web ports, and a `check` that says who answered.

Before, both took port 6066: the second to start could not serve, and `engagement check` said
"ready" because whichever process held the port answered. The HTTP answer is faked here (no
network); tests/integration/test_readme.py asks real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.settings import ENV, load_settings
from stream.app import create_app
from stream.cli.main import main

KEY = "k" * 24
WORKER_URL = "http://127.0.0.1:6066/readyz"
NOTIFIER_URL = "http://127.0.0.1:6067/readyz"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)


@contextlib.contextmanager
def app_of(role: str) -> Iterator[Any]:
    """A process's Faust app (nothing connects until it starts); its event loop is closed."""
    settings = load_settings(pseudonym_key=KEY)
    app, _ = create_app(
        settings, role, kafka_bootstrap="127.0.0.1:9", redis_url="redis://127.0.0.1:9/0"
    )
    try:
        yield app
    finally:
        app.loop.close()
        asyncio.set_event_loop(None)  # the next app starts a loop of its own


def test_the_worker_and_the_notifier_default_to_different_ports() -> None:
    settings = load_settings(pseudonym_key=KEY)
    assert settings.web_port_for("worker") == 6066
    assert settings.web_port_for("notifier") == 6067


@pytest.mark.parametrize(("role", "port"), [("worker", 6066), ("notifier", 6067)])
def test_each_process_serves_on_its_roles_port(role: str, port: int) -> None:
    with app_of(role) as app:
        assert app.conf.web_port == port


def test_an_explicit_port_applies_to_either_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV["web_port"], "7001")
    settings = load_settings(pseudonym_key=KEY)
    assert settings.web_port_for("worker") == settings.web_port_for("notifier") == 7001


class FakeHttp:
    """Answers `/readyz` as the process of ``role`` would, and remembers what was asked."""

    def __init__(self, role: str | None, ready: bool = True, status: int | None = None) -> None:
        self.role, self.ready, self.status = role, ready, status
        self.asked: list[str] = []

    def __call__(self, url: str, timeout: float = 2.0) -> tuple[int, bytes]:
        self.asked.append(url)
        body: dict[str, object] = {"ready": self.ready, "checks": {"redis": "ok"}}
        if self.role is not None:
            body |= {"role": self.role, "pid": 4242}
        status = self.status if self.status is not None else (200 if self.ready else 503)
        return status, json.dumps(body).encode()


def _check(monkeypatch: pytest.MonkeyPatch, fake: FakeHttp, *argv: str) -> int:
    monkeypatch.setattr("stream.probes.http_get", fake)
    return main(["check", *argv])


def test_a_check_of_the_worker_fails_when_the_notifier_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeHttp("notifier")
    assert _check(monkeypatch, fake, "--role", "worker") == 1
    assert fake.asked == [WORKER_URL]
    err = capsys.readouterr().err
    assert f"the notifier (pid 4242) answered at {WORKER_URL}, not the worker" in err


def test_a_check_names_the_process_that_answered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(monkeypatch, FakeHttp("worker")) == 0
    assert capsys.readouterr().out.startswith(f"ready: the worker (pid 4242) at {WORKER_URL}")
    assert _check(monkeypatch, FakeHttp("notifier"), "--role", "notifier") == 0
    assert f"ready: the notifier (pid 4242) at {NOTIFIER_URL}" in capsys.readouterr().out


def test_the_role_chooses_the_port_unless_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHttp("notifier")
    _check(monkeypatch, fake, "--role", "notifier")
    monkeypatch.setenv(ENV["web_port"], "7001")
    _check(monkeypatch, fake, "--role", "notifier")
    _check(monkeypatch, fake, "--url", "http://worker-1:6066/readyz")
    assert fake.asked == [
        NOTIFIER_URL,
        "http://127.0.0.1:7001/readyz",
        "http://worker-1:6066/readyz",
    ]


def test_not_ready_and_nothing_answering_fail_saying_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(monkeypatch, FakeHttp("worker", ready=False)) == 1
    assert capsys.readouterr().out.startswith("not ready: the worker (pid 4242)")
    monkeypatch.setattr("stream.probes.http_get", lambda url, timeout=2.0: (0, b""))
    assert main(["check", "--role", "notifier"]) == 1
    assert f"nothing answers at {NOTIFIER_URL} (is the notifier running?)" in (
        capsys.readouterr().err
    )


def test_an_answer_that_does_not_say_its_role_passes_only_without_a_role(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(monkeypatch, FakeHttp(None)) == 0
    assert "a process that does not say what it is" in capsys.readouterr().out
    assert _check(monkeypatch, FakeHttp(None), "--role", "worker") == 1


def test_the_readiness_answer_names_the_role_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real /readyz handler, with the broker, Redis and partition checks answered
    in-process."""

    async def answers(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr("stream.app.redis_answers", answers)
    monkeypatch.setattr("stream.app.broker_answers", answers)
    monkeypatch.setattr("stream.app.faust_partitions", lambda app, group: [])  # no consumer
    with app_of("notifier") as app:
        response = app.loop.run_until_complete(app.web.views["/readyz"].get(None))
    body = json.loads(response.body)
    assert body["role"] == "notifier"
    assert body["pid"] == os.getpid()
    assert body["checks"]["partitions"] == "no partitions assigned yet"
    assert response.status == 503
