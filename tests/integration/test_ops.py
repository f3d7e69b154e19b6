"""Operations, from the ops team's tools: a real Prometheus scraping a running deployment while
events flow, every dashboard query answering, no person in any metric label or log line, and
readiness that follows Redis."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.common import Source
from stream.dev.processes import free_port, scrape, total
from stream.dev.stack import Endpoints, LocalStack
from stream.probes import http_get
from tests.integration.harness import INGEST_TOKEN, TERM, Pipeline, vle, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DASHBOARD = Path(__file__).parents[2] / "ops" / "grafana" / "dashboards" / "engagement.json"
STUDENTS = 40
# Label names the product may use; none of them can hold a person's identifier.
ALLOWED_LABELS = {
    "source", "reason", "rule", "tier", "outcome", "channel", "result", "stage", "kind",
    "group", "topic", "partition", "location", "transport", "le", "quantile",
}  # fmt: skip


class Flow:
    """Publishes a few VLE events a second, dated now, until stopped."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _run(self) -> None:
        while not self.stop.is_set():
            now = datetime.now(UTC) - timedelta(minutes=1)
            batch = [vle(self.sent + n, f"S-FLOW-{n % 5}", now) for n in range(20)]
            self.pipeline.publish(Source.VLE, batch, size=10)
            self.sent += len(batch)
            self.stop.wait(0.5)


@pytest.fixture(scope="module")
def deployment(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Worker, notifier and receiver with a simulated cohort published, and events flowing."""
    workdir = tmp_path_factory.mktemp("ops")
    pipeline = Pipeline(stack, "ops" + workdir.name[-6:], workdir)
    flow = Flow(pipeline)
    try:
        pipeline.start("receiver", "receiver")
        pipeline.start("worker", "worker")
        pipeline.start("notifier", "notifier")
        pipeline.start("ingest", "ingest")
        _post_to_ingest(pipeline)  # its series exist from the start, as in production
        pipeline.cli(
            "simulate", "--students", str(STUDENTS), "--weeks", "3", "--envelope-size", "100",
            "--truth", str(workdir / "truth.json"), "--out", str(workdir / "sim"),
        )  # fmt: skip
        flow.thread.start()
        wait_for(
            "decisions",
            lambda: pipeline.metric("engagement_interventions_total", "notifier") > 0 or None,
            timeout=120,
        )
        pipeline.flow = flow  # type: ignore[attr-defined]  # for the tests below
        yield pipeline
    finally:
        flow.stop.set()
        pipeline.stop()


def _post_to_ingest(pipeline: Pipeline) -> None:
    """One request to the ingest service: a good event and a bad one."""
    events = [vle(0, "S-INGEST", TERM), {"event_id": "x"}]
    request = urllib.request.Request(
        f"http://127.0.0.1:{pipeline.ports['ingest']}/events/vle",
        data=json.dumps(events).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {INGEST_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # loopback
        assert response.status == 200


def _students(pipeline: Pipeline) -> set[str]:
    truth = json.loads((pipeline.workdir / "truth.json").read_text(encoding="utf-8"))
    ids = set(truth["students"])
    assert len(ids) == STUDENTS
    return ids | {f"S-FLOW-{n}" for n in range(5)}


# -- Prometheus and the dashboard ------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(deployment: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not found: install Debian's prometheus package")
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        # A busy notifier can take more than a second to answer; the timeout is the interval.
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 2s\n"
        "scrape_configs:\n"
        f"  - job_name: engagement-worker\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{deployment.ports['worker']}']\n"
        f"  - job_name: engagement-notifier\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{deployment.ports['notifier']}']\n"
        f"  - job_name: engagement-ingest\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{deployment.ports['ingest']}']\n",
        encoding="utf-8",
    )
    # Not an `engagement` sub-command: start the server directly, with the same log handling.
    log = (workdir / "prometheus.log").open("ab")
    proc = subprocess.Popen(  # the Debian package's binary
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("prometheus to start", lambda: http_get(f"{url}/-/ready")[0] == 200 or None)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=5)
    assert status == 200, (expr, body)
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_prometheus_scrapes_the_running_deployment_and_every_dashboard_query_answers(
    deployment: Pipeline, prometheus: str
) -> None:
    wait_for(
        "the three targets up",
        lambda: len([r for r in query(prometheus, "up") if r["value"][1] == "1"]) == 3 or None,
    )
    # Rates need two scrapes in the window; events keep flowing meanwhile.
    wait_for(
        "a rate of events while they flow",
        lambda: (
            any(
                float(r["value"][1]) > 0
                for r in query(prometheus, "sum(rate(engagement_events_received_total[30s]))")
            )
            or None
        ),
        timeout=60,
    )
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    waiting = {
        f"{panel['title']}: {target['expr']}": target["expr"].replace("$__rate_interval", "30s")
        for panel in panels
        for target in panel["targets"]
    }
    # A rate needs two scrapes of its series in the window: ask again until each answers.
    deadline = time.monotonic() + 90
    while waiting and time.monotonic() < deadline:
        waiting = {name: expr for name, expr in waiting.items() if not query(prometheus, expr)}
        if waiting:
            time.sleep(2)
    assert not waiting, "dashboard queries without data:\n" + "\n".join(waiting)


# -- no person in metrics or logs ------------------------------------------------------------------


def test_no_metric_label_or_log_line_carries_a_student_or_staff_id(deployment: Pipeline) -> None:
    students = _students(deployment)
    pseudonyms = {deployment.pseudonym(s) for s in students}
    roster = (deployment.workdir / "sim" / "roster.jsonl").read_text(encoding="utf-8")
    staff = {json.loads(line)["personal_tutor"] for line in roster.splitlines() if line}
    people = students | pseudonyms | staff
    for name in ("worker", "notifier"):
        samples = scrape(deployment.ports[name])
        assert total(samples, "engagement_events_received_total") >= 0
        for key in samples:
            if "{" not in key:
                continue
            for pair in key[key.index("{") + 1 : -1].split(","):
                label, _, value = pair.partition("=")
                assert label in ALLOWED_LABELS, f"{name}: label {label!r} in {key}"
                assert value not in people, f"{name}: {key} names a person"
                assert not re.fullmatch(r"p_[0-9a-f]{32}", value), key
    for name in ("worker", "notifier"):
        text = (deployment.workdir / f"{name}.log").read_text(encoding="utf-8")
        for person in students | staff:
            assert not re.search(rf"\b{re.escape(person)}\b", text), f"{name}.log names {person}"
        for pseudonym in pseudonyms:
            assert pseudonym not in text
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines, f"{name} wrote no JSON log lines"
        assert {"ts", "level", "logger", "role", "message"} <= set(lines[-1])
    notifier = [
        json.loads(line)
        for line in (deployment.workdir / "notifier.log").read_text().splitlines()
        if line.startswith("{")
    ]
    decided = [line for line in notifier if "nudge_id" in line]
    assert decided and all(
        line["message"].startswith(f"nudge {line['nudge_id']}") for line in decided
    )


# -- readiness ---------------------------------------------------------------------------------


def check(pipeline: Pipeline, name: str) -> subprocess.CompletedProcess[str]:
    """`engagement check` as a container health check runs it."""
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", "check"],
        env={**pipeline.env, "ENGAGEMENT_WEB_PORT": str(pipeline.ports[name])},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_readiness_follows_redis_and_engagement_check_reports_it(
    deployment: Pipeline, local_stack: LocalStack
) -> None:
    if not local_stack.endpoints.embedded_redis:
        pytest.skip("needs the embedded Redis, which the test stops and starts")
    for name in ("worker", "notifier"):
        ready = check(deployment, name)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        assert "redis: ok" in ready.stdout and "partitions: ok" in ready.stdout
    deployment.redis.save()
    local_stack.stop_redis()
    try:
        for name in ("worker", "notifier"):
            status, body = http_get(f"http://127.0.0.1:{deployment.ports[name]}/readyz", timeout=10)
            assert status == 503
            assert "redis does not answer" in json.loads(body)["checks"]["redis"]
            assert http_get(f"http://127.0.0.1:{deployment.ports[name]}/healthz")[0] == 200
            down = check(deployment, name)
            assert down.returncode == 1 and "not ready" in down.stdout
    finally:
        local_stack.start_redis()
    wait_for("ready again", lambda: check(deployment, "worker").returncode == 0 or None)
