"""The built-in status page in a real browser: headless Chromium against a real worker.

While a background thread keeps VLE events flowing, Chromium opens ``/status`` and is left to
poll in real time. Chromium's one-shot flags (``--dump-dom``, ``--screenshot``) cannot do
that: they dump at the load event, and ``--virtual-time-budget`` fast-forwards the page's
2-second timer, so its polls land milliseconds apart. The test therefore drives Chromium
through the DevTools protocol (aiohttp's WebSocket client), reads the DOM when the chart has
enough points, and saves laptop and phone screenshots to ``test-artefacts/``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schemas.common import Source
from schemas.sources import SOURCES
from stream.publisher import Publisher
from tests.integration.chromium import CHROMIUM, FLAGS, Page, devtools_port
from tests.integration.harness import TERM, Pipeline, vle, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "test-artefacts"
STUDENTS = [f"S-PAGE{i:04d}" for i in range(200)]
RATE = 300  # events per second while the page is watched

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium on PATH: install Debian's chromium package"
    ),
]


# the event feed -----------------------------------------------------------------------------
class Feed(threading.Thread):
    """Publish about ``RATE`` VLE events a second, in event-time order, until stopped."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(name="status-page-feed", daemon=True)
        self.pipeline = pipeline
        self.stopped = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        tick = 0.25
        per_tick = int(RATE * tick)
        n = itertools.count()
        try:
            with Publisher(
                self.pipeline.stack.kafka_bootstrap,
                topics=self.pipeline.settings.topics,
                envelope_size=25,
            ) as publisher:
                next_at = time.monotonic()
                while not self.stopped.is_set():
                    events = []
                    for student in itertools.islice(itertools.cycle(STUDENTS), per_tick):
                        i = next(n)
                        events.append(vle(i, student, TERM + timedelta(seconds=i)))
                    report = publisher.publish(Source.VLE, events)
                    publisher.flush()
                    assert report.refused == 0, report.summary()
                    self.sent += len(events)
                    next_at += tick
                    self.stopped.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)
        if self.error is not None:
            raise self.error


@dataclass
class Seen:
    """What the browser showed."""

    html: str
    laptop: dict[str, Any]
    phone: dict[str, Any]
    errors: list[str]


STATE = """(() => {
  const svg = document.getElementById("throughput");
  const text = (id) => document.getElementById(id).textContent.trim();
  return {
    points: Number(svg.dataset.points),
    eventsPerSecond: svg.dataset.latestEventsPerSecond,
    heading: document.querySelector("h1").textContent,
    title: document.title,
    lag: text("lag-total"), p50: text("state-p50"), p95: text("state-p95"),
    p99: text("state-p99"), updated: text("updated"), verdict: text("verdict-title"),
    role: text("role"), sources: document.querySelectorAll("#sources-body tr").length,
    polylines: svg.querySelectorAll("polyline").length,
    pageWidth: document.documentElement.scrollWidth, viewWidth: window.innerWidth,
  };
})()"""


def state_when(condition: str) -> str:
    """A page expression: what the page shows, once ``condition`` (on ``s``) holds, else null."""
    return f"(() => {{ const s = {STATE}; return ({condition}) ? s : null; }})()"


async def watch(url: str, out: Path) -> Seen:
    """Open ``url`` at laptop size until the chart has 3 rates, then at phone size."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            endpoint = devtools_port(Path(profile), proc)
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(endpoint, max_msg_size=0) as ws,
            ):
                browser = Page(ws)
                target = await browser.call("Target.createTarget", {"url": "about:blank"})
                attached = await browser.call(
                    "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
                )
                page = Page(ws, attached["sessionId"], browser._ids)
                for domain in ("Runtime", "Log", "Page"):
                    await page.call(f"{domain}.enable")
                await page.viewport(1280, 900, mobile=False)
                await page.call("Page.navigate", {"url": url})
                # Three rates need four polls, 2 s apart.
                laptop = await page.until(
                    "three throughput points above zero",
                    state_when("s.points >= 3 && Number(s.eventsPerSecond) > 0"),
                    timeout=25,
                )
                html = await page.evaluate("document.documentElement.outerHTML")
                await page.screenshot(out / "status-page-laptop.png")
                await page.viewport(390, 844, mobile=True)
                phone = await page.until(
                    "a poll after the resize",
                    state_when(f"s.points > {laptop['points']}"),
                    timeout=10,
                )
                await page.screenshot(out / "status-page-phone.png")
                errors = [*browser.errors, *page.errors]
                # Not awaited: Chromium may close the connection before it answers.
                await ws.send_str(json.dumps({"id": 0, "method": "Browser.close"}))
        finally:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Seen(html=html, laptop=laptop, phone=phone, errors=errors)


# the test -----------------------------------------------------------------------------------
def test_status_page_shows_live_throughput_and_no_student(pipeline: Pipeline) -> None:
    pipeline.start("worker", "worker")
    port = pipeline.ports["worker"]
    feed = Feed(pipeline)
    feed.start()
    try:
        wait_for(
            "events to reach the worker",
            lambda: pipeline.metric("engagement_signals_applied_total") > 0 or None,
            timeout=30,
        )
        ARTEFACTS.mkdir(exist_ok=True)
        seen = asyncio.run(watch(f"http://127.0.0.1:{port}/status", ARTEFACTS))
    finally:
        feed.stop()
    (ARTEFACTS / "status-page.html").write_text(seen.html, encoding="utf-8")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(ARTEFACTS / "status-page-laptop.png", ROOT / "docs" / "status-page.png")

    laptop, phone = seen.laptop, seen.phone
    assert laptop["heading"] == "Engagement stream status"
    assert laptop["title"] == "Engagement stream status (worker)"
    assert laptop["role"] == "worker"
    assert float(laptop["eventsPerSecond"]) > 0
    assert laptop["polylines"] == 2
    assert re.fullmatch(r"updated \d+ s ago", laptop["updated"])
    assert laptop["verdict"] in {"Keeping up", "Falling behind"}
    assert laptop["lag"] not in {"", "\u2014"}  # a number, or "not reported"
    for percentile in ("p50", "p95", "p99"):  # events flowed, so publish→state was measured
        assert re.fullmatch(r"(\u2265 )?[\d,.]+ (ms|s)|< 1 ms", laptop[percentile]), laptop
    assert laptop["sources"] == len(SOURCES)  # one row per registered feed
    # Readable on a phone: nothing wider than the screen, the chart redrawn and still moving.
    assert phone["viewWidth"] == 390
    assert phone["pageWidth"] <= phone["viewWidth"]
    assert float(phone["eventsPerSecond"]) > 0
    assert seen.errors == []
    # Counts only: no student id and no pseudonym anywhere on the page.
    assert "S-PAGE" not in seen.html
    for student in STUDENTS[:20]:
        assert pipeline.pseudonym(student) not in seen.html
    assert feed.sent >= RATE  # the feed really ran for the length of the test
