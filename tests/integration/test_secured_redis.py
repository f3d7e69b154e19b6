"""The product against Redis as docker-compose.yml runs it: no default user, and an ACL user
with a password and the compose file's rules (its own keys only, no admin or dangerous command).

A real Redis gets the ACL line the compose file's Redis writes at start-up; the worker, the
notifier and the command line reach it as the containers do, with REDIS_URL naming the user and
REDIS_PASSWORD_FILE holding the password. A student goes quiet and is prompted end to end, and
the staff and student commands run: a command the ACL refuses (NOPERM) anywhere fails the test.
(The Redis bundled for development is 6.2; the compose file runs 7.4, whose categories are
finer-grained but remove nothing 6.2 allows here.)
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from schemas.common import Source
from stream.dev.processes import free_port
from stream.dev.stack import Endpoints
from stream.dev.stack.services import redis_argv, redis_bin
from tests.integration.harness import TERM, Pipeline, vle, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
BACKGROUND = [f"S-BG{i:03d}" for i in range(24)]  # keeps the VLE feed moving on every partition
DAYS = 12


def _compose_acl(prefix: str, password: str) -> tuple[str, str]:
    """The ACL file the compose file's Redis writes (with this deployment's key prefix), and
    the user it creates."""
    redis_service = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["redis"]
    env = redis_service["environment"]
    rules = env["REDIS_APP_RULES"].replace("${ENGAGEMENT_KEY_PREFIX:-es}", prefix)
    assert "$" not in rules, rules
    script = "\n".join(redis_service["command"])
    assert "printf 'user default off\\nuser %s on >%s %s\\n'" in script  # the line used below
    user = env["REDIS_APP_USER"]
    return f"user default off\nuser {user} on >{password} {rules}\n", user


@pytest.fixture
def secured(prefix: str, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(URL naming the user, the password file, the password) of a Redis with the compose
    file's ACL."""
    password = secrets.token_hex(16)
    acl, user = _compose_acl(prefix, password)
    (tmp_path / "users.acl").write_text(acl, encoding="utf-8")
    secret = tmp_path / "redis_password"
    secret.write_text(password + "\n", encoding="utf-8")
    port = free_port()
    log = (tmp_path / "redis.log").open("ab")
    proc = subprocess.Popen(  # the development Redis binary, on loopback
        [*redis_argv(redis_bin(), port, tmp_path), "--aclfile", str(tmp_path / "users.acl")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"redis://{user}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(f"redis://{user}:{password}@127.0.0.1:{port}/0")

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for("the secured Redis", answers, 30)
        yield url, secret, password
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)


def test_the_product_works_with_the_compose_files_redis_user(
    stack: Endpoints, prefix: str, tmp_path: Path, secured: tuple[str, Path, str]
) -> None:
    url, secret, password = secured
    with_password = url.replace("@", f":{password}@", 1)  # for the test's own reads only
    endpoints = Endpoints(stack.kafka_bootstrap, with_password, False, False)
    pipeline = Pipeline(endpoints, prefix, tmp_path / "run")
    # The processes get the user in the URL and the password in a file, as in the containers.
    pipeline.env |= {"REDIS_URL": url, "REDIS_PASSWORD_FILE": str(secret)}
    try:
        pipeline.start("receiver", "receiver")
        pipeline.start("worker", "worker")
        pipeline.start("notifier", "notifier")
        assert "applied:" in pipeline.cli("prefs", "set", "S-OPT", "--opt-out", "sms")
        events: dict[Source, list[dict[str, Any]]] = {Source.VLE: []}
        for day in range(DAYS):
            at = TERM + timedelta(days=day, hours=1)
            events[Source.VLE] += [vle(day, student, at) for student in BACKGROUND]
        events[Source.VLE].append(vle(0, "S-ABS", TERM + timedelta(hours=2)))
        pipeline.publish_all(events)
        delivered = wait_for(
            "the quiet student's prompt",
            lambda: [r for r in pipeline.received() if r["payload"]["student_id"] == "S-ABS"],
            120,
        )
        assert delivered[0]["payload"]["rule_id"] == "no_vle_activity_7d"
        records = pipeline.records("S-ABS")
        assert [r["outcome"] for r in records] == ["delivered"]
        assert "nothing waiting for you" in pipeline.cli("review", "list", "--staff", "ST-NOBODY")
        export = tmp_path / "records.jsonl"
        assert "Exported 1 intervention record" in pipeline.cli(
            "interventions", "export", "--jsonl", str(export)
        )
        assert json.loads(export.read_text(encoding="utf-8").splitlines()[0])
        for name in ("worker", "notifier", "receiver"):
            log = (pipeline.workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")
            assert "NOPERM" not in log and "NOAUTH" not in log, f"{name}: refused by Redis"
    finally:
        pipeline.stop()


def test_the_compose_files_redis_refuses_strangers_and_administration(
    prefix: str, secured: tuple[str, Path, str]
) -> None:
    url, _, password = secured
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    stranger = redis.Redis(host="127.0.0.1", port=port)
    with pytest.raises(redis.AuthenticationError):  # the default user is off
        stranger.ping()
    stranger.close()
    app = redis.Redis.from_url(url.replace("@", f":{password}@", 1))
    try:
        app.set(f"{prefix}:probe", "1")  # its own keys: yes
        for refused in (
            lambda: app.set("someone-else:key", "1"),
            lambda: app.flushall(),
            lambda: app.keys("*"),
            lambda: app.config_get("*"),
            lambda: app.acl_list(),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                refused()
    finally:
        app.close()
