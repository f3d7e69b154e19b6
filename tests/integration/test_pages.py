"""The pages in real headless Chromium, against the API on uvicorn with the local issuer.

A student signs in, sees the explanation of a real nudge the notifier delivered, opts out of
e-mail with the keyboard only, asks for a correction and downloads the export; a tutor claims
and closes a real invitation the notifier queued, opens the tutee's page (another tutor's
student answers the same not-found page as nobody), and accepts the student's correction with
the keyboard; an insights user sees suppressed cells and the backtest reports filed for them.
Every page is checked for the WCAG basics a DOM can show: one ``h1`` and headings in order,
a skip link first, a label on every field, a text alternative for the chart, a visible focus,
and nothing loaded from anywhere else. With ENGAGEMENT_SCREENSHOTS=docs the screenshots
of docs/pages.md are written (docs/pages-me.png, -review.png, -insights.png, -student.png,
-corrections.png).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

from agents.model.eventtime import local_day, to_epoch_ms
from agents.store.reference import ReferenceStore
from schemas.access import Role
from schemas.keys import Keys
from schemas.nudges import Route, Tier
from schemas.reference import RosterEntry
from schemas.settings import Settings, load_settings
from sinks.stores.audit import AuditEntry, AuditLog
from sinks.stores.corrections import CorrectionStore
from stream.api.app import build_api, create_app
from stream.api.auth import build_authenticator
from stream.api.issuer import LocalIssuer
from stream.api.session import install_signin
from stream.cli.replay import publish
from stream.dev.processes import free_port
from stream.dev.stack import Endpoints
from stream.offline.backtest import Decision, build_report
from tests.integration.chromium import CHROMIUM, SKIP_REASON, Page, browser
from tests.integration.harness import Pipeline, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON),
]

ROOT = Path(__file__).resolve().parents[2]
SESSION_SECRET = "pages-test-session-secret-0123456789abcdef"  # noqa: S105  # test secret
STUDENT = "S-PAGES-1"
TUTOR = "T-PAGES-1"
OTHER = "S-PAGES-OTHER"  # on the roster with another tutor: not TUTOR's to open
NOBODY = "S-PAGES-NOBODY"  # not held at all
SCREENSHOTS = os.environ.get("ENGAGEMENT_SCREENSHOTS")


class PagesServer:
    """The API as ``engagement api`` serves it (sign-in, local issuer, pages), on uvicorn in a
    thread of its own with its own event loop, on a free loopback port."""

    def __init__(self, settings: Settings, redis_url: str, kafka: str | None) -> None:
        self.settings = settings
        self.api = build_api(settings, redis_url, kafka)
        self.server: uvicorn.Server | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return self.settings.public_url()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__, not lost in the thread
            self.error = exc

    async def _serve(self) -> None:
        authenticator = await build_authenticator(self.settings)
        app = create_app(self.api, authenticator=authenticator)
        install_signin(app, self.settings, client=self.api.redis, authenticator=authenticator)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.settings.api_port, access_log=False,
            log_level="warning",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        await self.server.serve()

    def __enter__(self) -> PagesServer:
        self.thread.start()

        def started() -> bool:
            assert self.error is None, self.error
            return self.server is not None and self.server.started

        wait_for("the API to start", started, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(30)


def page_settings(prefix: str, key: str, workdir: Path, redis_url: str) -> Settings:
    """One deployment's settings, signing in with the local issuer."""
    return load_settings(
        pseudonym_key=key,
        key_prefix=prefix,
        topic_prefix=f"{prefix}.",
        state_dir=workdir,
        redis_url=redis_url,
        oidc_issuer="local",
        local_setup=True,
        api_port=free_port(),
        api_public_url=None,
        session_secret=SESSION_SECRET,
    )


def seed(redis_url: str, work: Callable[[aioredis.Redis], Awaitable[None]]) -> None:
    """Run ``work`` on a fresh Redis connection."""

    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await work(client)
        finally:
            await client.aclose()

    asyncio.run(go())


def seed_student(settings: Settings, redis_url: str) -> None:
    """STUDENT on the roster with TUTOR, and 30 days of records: online and on campus most
    days until 9 days ago, then at one of two sessions on two recent days."""
    today = local_day(datetime.now(UTC), settings.zone)
    pseudonymise = build_api(settings, redis_url, None).pseudonymise
    keys = Keys(settings.key_prefix)

    async def work(client: aioredis.Redis) -> None:
        store = ReferenceStore(client, settings.key_prefix, pseudonymise, settings.zone)
        await store.put_roster(RosterEntry(student_id=STUDENT, personal_tutor=TUTOR, course="CS"))
        await store.put_roster(RosterEntry(student_id=OTHER, personal_tutor="T-PAGES-2"))
        fields = {"first": str(to_epoch_ms(datetime.now(UTC) - timedelta(days=40)))}
        for day in range(today - 40, today - 8):
            if day % 7 not in (0, 3):
                fields[f"d:{day}:vle"] = str(2 + day % 3)
                fields[f"d:{day}:swipe"] = "1"
        for day in (today - 3, today - 2):
            fields[f"a:{day}"] = "1,0,1,0"
        await client.hset(keys.state(pseudonymise(STUDENT)), mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant

    seed(redis_url, work)


# -- what every page must be -----------------------------------------------------------------

A11Y = """(() => {
  const visible = (el) => el.type !== "hidden";
  const fields = [...document.querySelectorAll("input, select, textarea")].filter(visible);
  const unlabelled = fields.filter((f) => !f.labels || f.labels.length === 0
    || [...f.labels].every((l) => l.textContent.trim() === "")).map((f) => f.outerHTML);
  const levels = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
    .map((h) => Number(h.tagName[1]));
  const jumps = levels.filter((n, i) => i > 0 && n > levels[i - 1] + 1);
  const svgs = [...document.querySelectorAll("svg")].map((s) => ({
    role: s.getAttribute("role"), title: !!s.querySelector("title"),
    desc: !!s.querySelector("desc"), labelledby: s.getAttribute("aria-labelledby") }));
  const foreign = performance.getEntriesByType("resource")
    .map((r) => r.name).filter((n) => !n.startsWith(location.origin));
  const buttons = [...document.querySelectorAll("button")]
    .filter((b) => b.textContent.trim() === "").length;
  return { unlabelled, levels, jumps, svgs, foreign, buttons, lang: document.documentElement.lang,
    h1: document.querySelectorAll("h1").length,
    skip: document.querySelector("a")?.getAttribute("href"),
    tables: [...document.querySelectorAll("table")].filter((t) => !t.caption).length };
})()"""


async def check_basics(page: Page) -> dict[str, Any]:
    """The WCAG basics a DOM shows, on the page now open; what was found."""
    found: dict[str, Any] = await page.evaluate(A11Y)
    assert found["unlabelled"] == [], found["unlabelled"]
    assert found["h1"] == 1 and found["levels"][0] == 1 and found["jumps"] == [], found
    assert found["skip"] == "#main" and found["lang"] == "en-GB"
    assert found["foreign"] == [] and found["buttons"] == 0 and found["tables"] == 0
    for svg in found["svgs"]:
        assert svg["role"] == "img" and svg["title"] and svg["desc"] and svg["labelledby"]
    assert page.errors == []  # a blocked resource (CSP) or a script error shows up here
    return found


async def sign_in(page: Page, base: str, hint: str, path: str) -> None:
    """Open ``path``, be sent to the start page, sign in as ``hint`` with the keyboard, and
    land back on ``path``."""
    await page.goto(f"{base}{path}")
    assert (await page.loaded(path="/")).endswith(f"/?next={path}")
    await page.evaluate("document.getElementById('login-hint').focus()")
    await page.type_text(hint)
    await page.press("Enter")
    await page.loaded(path=path)
    assert await page.evaluate("location.pathname") == path


async def tab_to(page: Page, expression: str, limit: int = 80) -> int:
    """Press Tab until ``expression`` (on ``el``, the focused element) holds; the presses."""
    for presses in range(1, limit + 1):
        await page.press("Tab")
        if await page.evaluate(f"(() => {{ const el = document.activeElement; "
                               f"return !!el && ({expression}); }})()"):  # fmt: skip
            return presses
    msg = f"Tab never reached {expression}"
    raise AssertionError(msg)


FOCUS_SHOWN = """(() => { const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2; })()"""


async def submitted(page: Page, done: str) -> None:
    """Wait for a form's answer: back on the page saying ``done``, or a refusal (fails)."""
    try:
        answer = await page.until(
            f"the answer to the {done} form",
            f"(location.search === '?done={done}' && document.readyState === 'complete') || "
            "document.querySelector('.notice.problem')?.textContent",
            20,
        )
    except AssertionError as exc:
        where = await page.evaluate("location.href + ' ' + document.body.innerText")
        raise AssertionError(f"{exc}; the page: {where[:600]}") from None
    assert answer is True, f"refused: {answer}"


async def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        await page.screenshot(ROOT / SCREENSHOTS / name)


# -- the student and their tutor ---------------------------------------------------------------


@pytest.fixture
def served(pipeline: Pipeline, stack: Endpoints, prefix: str) -> Iterator[PagesServer]:
    settings = page_settings(prefix, pipeline.key, pipeline.workdir, stack.redis_url)
    with PagesServer(settings, stack.redis_url, stack.kafka_bootstrap) as server:
        yield server


async def student_visit(base: str, downloads: Path, summary: str) -> dict[str, Any]:
    """Sign in, read, opt out of e-mail by keyboard, ask for a correction, download."""
    seen: dict[str, Any] = {}
    async with browser(downloads) as (_, page):
        await page.viewport(1100, 900, mobile=False)
        await sign_in(page, base, f"student:{STUDENT}", "/me")
        seen["basics"] = await check_basics(page)
        seen["band"] = await page.evaluate("document.getElementById('band').textContent")
        seen["explanation"] = await page.evaluate(
            "document.getElementById('explanation').textContent"
        )
        seen["records"] = await page.evaluate("document.getElementById('records').innerText")
        seen["rules"] = await page.evaluate("document.getElementById('rules').innerText")
        seen["chart_weeks"] = await page.evaluate(
            "Number(document.getElementById('weekly-chart').dataset.weeks)"
        )
        seen["bars"] = await page.evaluate(
            "document.querySelectorAll('#weekly-chart rect[height]:not([height=\"0.0\"])').length"
        )
        assert summary in seen["records"]
        await shoot(page, "pages-me.png")
        await page.viewport(390, 844, mobile=True)  # a phone: nothing wider than the screen
        seen["phone"] = await page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        await page.viewport(1100, 900, mobile=False)

        # Keyboard only: the skip link first, then Tab to the e-mail opt-out, space to tick it,
        # Tab to the form's button, Enter to send it.
        await page.goto(f"{base}/me")
        await page.press("Tab")
        seen["first_focus"] = await page.evaluate("document.activeElement.className")
        seen["skip_focus_shown"] = await page.evaluate(FOCUS_SHOWN)
        await page.press("Enter")
        seen["after_skip"] = await page.evaluate("document.activeElement.id")
        seen["tabs_to_optout"] = await tab_to(page, "el.id === 'optout-email'")
        seen["checkbox_focus_shown"] = await page.evaluate(FOCUS_SHOWN)
        await page.press(" ")
        assert await page.evaluate("document.getElementById('optout-email').checked")
        await tab_to(page, "el.closest('#preferences-form') && el.type === 'submit'", 5)
        seen["button_focus_shown"] = await page.evaluate(FOCUS_SHOWN)
        await page.press("Enter")
        await submitted(page, "preferences")
        await page.loaded(path="/me")
        seen["saved"] = await page.evaluate("document.querySelector('.notice').textContent")
        seen["email_ticked"] = await page.evaluate(
            "document.getElementById('optout-email').checked"
        )

        # A correction: "this is not my activity", today.
        today = datetime.now(UTC).date().isoformat()
        await page.evaluate(
            "(() => { document.getElementById('correction-kind').value = 'not_mine';"
            f" document.getElementById('correction-day').value = '{today}';"
            " document.getElementById('correction-note').value = 'I was ill <b>that day</b>';"
            " document.querySelector('#correction-form button').click(); })()"
        )
        await submitted(page, "correction")
        await page.loaded(path="/me")
        seen["corrections"] = await page.evaluate(
            "document.getElementById('corrections')?.innerText ?? ''"
        )
        seen["after_correction"] = await check_basics(page)

        # The export: a real download of the zip the link gives.
        await page.evaluate("document.getElementById('export-link').click()")
        seen["export"] = await asyncio.to_thread(
            wait_for,
            "the export download",
            lambda: next((p for p in downloads.glob("*.zip") if p.stat().st_size), None),
            30,
        )
        await page.goto(f"{base}/me")  # "who has looked" now lists the download too
        seen["access"] = await page.evaluate("document.getElementById('access-log').innerText")
    return seen


async def not_found_page(page: Page, base: str, student_id: str) -> str:
    """Open ``student_id`` with the review queue's "open a student" form, by keyboard; the
    page's main text (after checking it is the not-found page, 404)."""
    await page.goto(f"{base}/staff/review")
    await page.evaluate("document.getElementById('open-student-id').focus()")
    await page.type_text(student_id)
    await page.press("Enter")
    await page.until(
        "the not-found page",
        "document.readyState === 'complete' && !!document.getElementById('not-found')",
        20,
    )
    # The browser logs the page's 404 status as an error: that one, and nothing else.
    assert all("404" in error for error in page.errors), page.errors
    assert len(page.errors) == 1, page.errors
    page.errors.clear()
    await check_basics(page)
    text: str = await page.evaluate("document.querySelector('main').innerText")
    return text


async def open_tutee(page: Page, base: str, href: str, seen: dict[str, Any]) -> None:
    """The tutee's page, from the review item's link: band, rules, chart, records."""
    await page.goto(f"{base}{href}")
    await page.loaded(path="/staff/students/")
    seen["student_basics"] = await check_basics(page)
    seen["student_h1"] = await page.evaluate("document.querySelector('h1').textContent")
    seen["student_band"] = await page.evaluate("document.getElementById('band').textContent")
    seen["student_facts"] = await page.evaluate(
        "document.getElementById('student-facts').innerText"
    )
    seen["student_rules"] = await page.evaluate("document.getElementById('rules').innerText")
    seen["student_records"] = await page.evaluate("document.getElementById('records').innerText")
    seen["student_weeks"] = await page.evaluate(
        "Number(document.getElementById('weekly-chart').dataset.weeks)"
    )
    await shoot(page, "pages-student.png")


async def accept_correction(page: Page, base: str, seen: dict[str, Any]) -> None:
    """The correction queue: accept the student's request with the keyboard only."""
    await page.goto(f"{base}/staff/corrections")
    seen["corrections_basics"] = await check_basics(page)
    seen["queue"] = await page.evaluate("document.querySelector('main').innerText")
    await shoot(page, "pages-corrections.png")
    await page.press("Tab")  # the skip link, then into the main content
    await page.press("Enter")
    await tab_to(page, "el.id.startsWith('accept-note-')")
    await page.type_text("Checked with the register")
    await tab_to(page, "el.id.startsWith('accept-c_')", 3)
    seen["accept_focus_shown"] = await page.evaluate(FOCUS_SHOWN)
    await page.press("Enter")
    await submitted(page, "accepted")
    await page.loaded(path="/staff/corrections")
    seen["after_accept"] = await page.evaluate("document.querySelector('main').innerText")
    await check_basics(page)


async def tutor_visit(base: str) -> dict[str, Any]:
    """Sign in as the tutor, claim the invitation, record a contact; open the tutee's page
    and two that are not the tutor's to open; accept the tutee's correction request."""
    seen: dict[str, Any] = {}
    async with browser() as (_, page):
        await page.viewport(1100, 900, mobile=False)
        await sign_in(page, base, f"tutor:{TUTOR}", "/staff/review")
        seen["basics"] = await check_basics(page)
        seen["items"] = await page.evaluate("document.querySelectorAll('article.item').length")
        seen["item"] = await page.evaluate("document.querySelector('article.item').innerText")
        seen["student_link"] = await page.evaluate(
            "document.querySelector('article.item h3 a').getAttribute('href')"
        )
        await shoot(page, "pages-review.png")
        await page.evaluate("document.querySelector('form.claim button').click()")
        await submitted(page, "claimed")
        await page.loaded(path="/staff/review")
        seen["holder"] = await page.evaluate("document.querySelector('.holder').textContent")
        # Closed with the keyboard: Tab to the action, choose, Tab to the button, Enter.
        await page.evaluate(
            "(() => { document.querySelector('form.decide select').value = 'meeting_booked';"
            " document.querySelector('form.decide input[name=reason]').value = 'Tuesday 10:00';"
            " })()"
        )
        await page.evaluate("document.querySelector('form.decide input[name=referred_to]').focus()")
        await tab_to(page, "el.closest('form.decide') && el.type === 'submit'", 3)
        await page.press("Enter")
        await submitted(page, "decided")
        await page.loaded(path="/staff/review")
        seen["after"] = await page.evaluate("document.querySelector('main').innerText")
        await check_basics(page)
        await open_tutee(page, base, seen["student_link"], seen)
        seen["other"] = await not_found_page(page, base, OTHER)
        seen["nobody"] = await not_found_page(page, base, NOBODY)
        await accept_correction(page, base, seen)
    return seen


def test_a_student_and_their_tutor_use_the_pages(
    pipeline: Pipeline, served: PagesServer, stack: Endpoints, tmp_path: Path
) -> None:
    from tests.integration.test_notifier_process import prompt_for

    pipeline.start("receiver", "receiver")
    pipeline.start("notifier", "notifier")
    seed_student(served.settings, stack.redis_url)
    nudge = prompt_for(pipeline, STUDENT)
    invitation = prompt_for(
        pipeline, STUDENT, 1, tier=Tier.INVITATION, route=Route.PERSONAL_TUTOR,
        rule_id="no_activity_14d", channels=(), nudge_id=f"n_{uuid.uuid4().hex}",
    )  # fmt: skip
    pipeline.publish_nudges([nudge, invitation])
    wait_for("the prompt to be delivered", pipeline.received)

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    summary = nudge.explanation.summary
    seen = asyncio.run(student_visit(served.url, downloads, summary))

    assert seen["band"].startswith("Band: ") and "not known" not in seen["band"]
    assert seen["explanation"].startswith("Your engagement score is ")
    assert "sent to you" in seen["records"]  # the delivered prompt, with its explanation
    assert "passed to a member of staff" in seen["records"]  # the invitation, queued
    assert "14 days" in seen["rules"] and "attendance below 50%" in seen["rules"]
    assert seen["chart_weeks"] == 8 and seen["bars"] > 0
    assert seen["phone"][0] <= seen["phone"][1] == 390
    # Keyboard: the skip link comes first and lands in the main content; focus is visible.
    assert seen["first_focus"] == "skip" and seen["after_skip"] == "main"
    assert seen["skip_focus_shown"] and seen["checkbox_focus_shown"]
    assert seen["button_focus_shown"]
    assert "saved" in seen["saved"]
    assert seen["email_ticked"]  # what the notifier holds now (the page re-read it)
    held = Keys(pipeline.prefix).preferences(pipeline.pseudonym(STUDENT))
    assert pipeline.redis.exists(held), "the opt-out reached the notifier's preference store"
    assert "not my activity" in seen["corrections"].lower()
    with zipfile.ZipFile(seen["export"]) as export:
        names = export.namelist()
    assert any(n.endswith(".json") for n in names) and any(n.endswith(".csv") for n in names)
    assert "GET /v1/me/export" in seen["access"]

    tutor = asyncio.run(tutor_visit(served.url))
    assert tutor["items"] == 1 and STUDENT in tutor["item"]
    assert tutor["holder"] == "You have taken it."
    assert "Your decision is recorded." in tutor["after"]
    assert "Nothing is waiting for you." in tutor["after"]
    # The tutee's page: what the staff API answers, the same band the student saw.
    assert tutor["student_link"] == f"/staff/students/{STUDENT}"
    assert tutor["student_h1"] == f"Student {STUDENT}"
    assert tutor["student_band"] == seen["band"]
    facts = tutor["student_facts"].splitlines()
    assert TUTOR in facts and facts[-1].strip() == "tutor"
    assert "14 days" in tutor["student_rules"] and tutor["student_weeks"] == 8
    assert "passed to a member of staff" in tutor["student_records"]
    assert "a member of staff acted" in tutor["student_records"]  # the decision just recorded
    # Another tutor's student and a student who does not exist: the very same page.
    assert "There is no such student, or not one you may open." in tutor["other"]
    assert tutor["other"] == tutor["nobody"]
    assert OTHER not in tutor["other"]
    # The correction queue: the student's request, accepted with the keyboard.
    assert STUDENT in tutor["queue"] and "Says activity is not theirs" in tutor["queue"]
    assert tutor["accept_focus_shown"]
    assert "The correction is accepted." in tutor["after_accept"]
    assert "No correction request is waiting." in tutor["after_accept"]
    decided: list[Any] = []
    entries: list[AuditEntry] = []

    async def read(client: aioredis.Redis) -> None:
        store = CorrectionStore(client, served.settings.key_prefix)
        decided.extend(await store.of_student(pipeline.pseudonym(STUDENT)))
        log = AuditLog(client, served.settings.key_prefix, retention_days=30)
        entries.extend(await log.latest(1000))

    seed(stack.redis_url, read)
    assert [(c.status.value, c.decided_by, c.reason) for c in decided] == [
        ("accepted", TUTOR, "Checked with the register")
    ]
    # Both page views were audited by the staff API, the refused one as refused.
    audit = [e for e in entries if e.who == TUTOR and "/v1/students/" in e.action]
    assert {(e.pseudonym, e.outcome) for e in audit} >= {
        (pipeline.pseudonym(STUDENT), "read"), (pipeline.pseudonym(OTHER), "refused"),
    }  # fmt: skip


LINKED = {
    "/my-engagement": "/me",
    "/my-engagement/preferences": "/me#opt-out",
    "/me/preferences": "/me#opt-out",
}


def test_the_pages_send_a_policy_that_forbids_other_sites(served: PagesServer) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        start = http.get("/")
        me = http.get("/me")
        style = http.get("/pages/style.css")
        # The links every message gives ({data_url}, {preferences_url}) lead to this page.
        linked = {path: http.get(path).headers.get("location") for path in LINKED}
    assert start.status_code == 200 and start.headers["content-type"].startswith("text/html")
    policy = start.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy
    assert "script-src" not in policy  # none: default-src 'none' forbids every script
    assert "frame-ancestors 'none'" in policy and "http" not in policy.replace(served.url, "")
    assert me.status_code == 303 and me.headers["location"] == "/?next=/me"
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "<script" not in start.text
    assert linked == LINKED


# -- insights ----------------------------------------------------------------------------------


def shown(count: int | None) -> str:
    return "suppressed" if count is None else str(count)


def test_an_insights_user_sees_suppressed_cells_and_no_student(
    stack: Endpoints, prefix: str, tmp_path: Path
) -> None:
    settings = page_settings(prefix, f"pages-{uuid.uuid4().hex}", tmp_path, stack.redis_url)
    students = [(f"S-INS-CS-{n:03d}", "CS") for n in range(24)]
    students += [(f"S-INS-ART-{n:03d}", "Art") for n in range(4)]
    students += [(f"S-INS-MA-{n:03d}", "Maths") for n in range(15)]
    pseudonymise = build_api(settings, stack.redis_url, None).pseudonymise

    async def work(client: aioredis.Redis) -> None:
        store = ReferenceStore(client, settings.key_prefix, pseudonymise, settings.zone)
        keys, today = Keys(settings.key_prefix), local_day(datetime.now(UTC), settings.zone)
        first = str(to_epoch_ms(datetime.now(UTC) - timedelta(days=30)))
        for n, (student_id, course) in enumerate(students):
            await store.put_roster(RosterEntry(student_id=student_id, course=course))
            if course == "Maths" or (course == "CS" and n % 2 == 0):  # a score: a band
                fields = {"first": first}
                for day in range(today - 30, today + 1):
                    fields[f"d:{day}:vle"], fields[f"d:{day}:swipe"] = "6", "1"
                state = keys.state(pseudonymise(student_id))
                await client.hset(state, mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant

    seed(stack.redis_url, work)
    filed, naming = file_backtests(tmp_path, [pseudonymise(s) for s, _ in students], students[0][0])
    with PagesServer(settings, stack.redis_url, None) as server:
        token = LocalIssuer.from_settings(settings).mint("I-PAGES-2", [Role.INSIGHTS])
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.get(
                "/v1/insights/cohorts",
                params={"by": "course"},
                headers={"Authorization": f"Bearer {token}"},
            ).json()

        async def visit() -> dict[str, Any]:
            async with browser() as (_, page):
                await page.viewport(1100, 900, mobile=False)
                await sign_in(page, server.url, "insights:I-PAGES-1", "/insights")
                found = {"basics": await check_basics(page)}
                found["table"] = await page.evaluate("document.getElementById('cohorts').innerText")
                found["suppressed"] = await page.evaluate(
                    "document.querySelectorAll('#cohorts .suppressed').length"
                )
                found["html"] = await page.evaluate("document.documentElement.outerHTML")
                await shoot(page, "pages-insights.png")
                # By week, with the keyboard: Tab to the grouping, choose, Tab, Enter.
                await page.evaluate("document.getElementById('by').value = 'week'")
                await page.evaluate("document.getElementById('by').focus()")
                await tab_to(page, "el.closest('form.by') && el.type === 'submit'", 3)
                await page.press("Enter")
                await page.until("the weekly table", "location.search === '?by=week'", 20)
                await page.loaded(path="/insights")
                found["weeks"] = await page.evaluate(
                    "document.querySelectorAll('#cohorts tbody tr').length"
                )
                # The backtest reports: one to read, one withheld (it names a student).
                found["backtests"] = await page.evaluate(
                    "document.getElementById('backtests').innerText"
                )
                found["report_links"] = await page.evaluate(
                    "[...document.querySelectorAll('#backtests a')].map((a) => a.textContent)"
                )
                await page.evaluate("document.querySelector('#backtests a').focus()")
                await page.press("Enter")
                await page.loaded(path="/insights/backtests/")
                found["report_basics"] = await check_basics(page)
                found["report"] = await page.evaluate(
                    "document.getElementById('backtest-text').textContent"
                )
                found["report_html"] = await page.evaluate("document.documentElement.outerHTML")
                return found

        seen = asyncio.run(visit())
    rows = [line.split("\t") for line in seen["table"].splitlines()[2:]]
    # The page shows exactly what the JSON API answers: each hidden count as "suppressed".
    expected = [
        [row["group"], *[shown(c) for c in row["counts"]], shown(row["total"])]
        for row in answer["rows"]
    ]
    expected.append(["All", *[shown(c) for c in answer["band_totals"]], shown(answer["total"])])
    assert rows == expected
    assert [r[0] for r in rows] == ["Art", "CS", "Maths", "All"]
    assert rows[0][-1] == "suppressed"  # Art: 4 students, so even its total is hidden
    assert any(cell.isdigit() for row in rows[:-1] for cell in row[1:])
    assert seen["suppressed"] == sum(cell == "suppressed" for row in rows for cell in row)
    assert seen["weeks"] == 8 + 1  # eight weeks and the totals row
    for student_id, _ in students:
        assert student_id not in seen["html"]
        assert pseudonymise(student_id) not in seen["html"]
        assert student_id not in seen["report_html"]
        assert pseudonymise(student_id) not in seen["report_html"]
    # The filed report is listed and readable; the one naming a student is listed as withheld.
    assert seen["report_links"] == [filed]
    assert naming in seen["backtests"] and "withheld: it names a student" in seen["backtests"]
    assert seen["report"].startswith("Backtest from 2026-09-28 to 2026-10-25 (28 days): ")
    assert (
        "Rule no_activity_14d" in seen["report"] and "Reached 12 of 43 students" in seen["report"]
    )


def file_backtests(state_dir: Path, pseudonyms: list[str], student_id: str) -> tuple[str, str]:
    """A replay's report filed as ``engagement replay --publish`` files it, and a hand-made
    one that names ``student_id``; their names."""
    first = date(2026, 9, 28)
    decisions = [
        Decision(f"n_{n:032x}", "no_activity_14d", p, first + timedelta(days=n), "prompt", "live",
                 None)
        for n, p in enumerate(pseudonyms[:12])
    ]  # fmt: skip
    report = build_report(
        decisions, students=pseudonyms, first_day=first, last_day=first + timedelta(days=27)
    )
    filed = publish(report, state_dir)
    naming = "backtest-20260101T000000Z"
    report["rules"][0]["weekly"][student_id] = 1
    (filed.parent / f"{naming}.json").write_text(json.dumps(report), encoding="utf-8")
    return filed.stem, naming


# -- refusals ----------------------------------------------------------------------------------


@contextmanager
def signed_in_client(base: str, hint: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a session: sign-in followed through the local issuer."""
    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as http:
        answer = http.get("/auth/login", params={"login_hint": hint, "next": "/"})
        assert answer.status_code == 200, answer.text
        yield http


def test_bad_input_to_the_pages_is_a_refusal_with_a_reason(served: PagesServer) -> None:
    with signed_in_client(served.url, "student:S-PAGES-<b>2</b>") as http:
        start = http.get("/")
        no_token = http.post("/me/preferences", data={"opt_out": "email"})
        csrf = no_token.text.split('name="csrf_token" value="')[1].split('"')[0]
        bad_day = http.post(
            "/me/corrections", data={"csrf_token": csrf, "kind": "not_mine", "day": "soon"}
        )
        bad_kind = http.post(
            "/me/corrections", data={"csrf_token": csrf, "kind": "<script>", "day": "2026-01-01"}
        )
        not_staff = http.get("/staff/review")
        not_insights = http.get("/insights")
        student_opens = http.get(f"/staff/students/{STUDENT}")
        student_queue = http.get("/staff/corrections")
        bad_item = http.post("/staff/review/..%2f..%2fv1%2fme/claim", data={"csrf_token": csrf})
    with signed_in_client(served.url, f"tutor:{TUTOR}") as http:
        not_student = http.get("/me")
        html = http.get("/staff/review").text
        csrf = html.split('name="csrf_token" value="')[1].split('"')[0]
        unknown = http.post(f"/staff/review/n_{'0' * 32}/claim", data={"csrf_token": csrf})
        no_reason = http.post(
            f"/staff/corrections/c_{'0' * 32}/reject", data={"csrf_token": csrf, "reason": " "}
        )
        no_request = http.post(
            f"/staff/corrections/c_{'0' * 32}/accept", data={"csrf_token": csrf, "reason": "ok"}
        )
        bad_request = http.post("/staff/corrections/..%2f..%2fv1/accept", data={"csrf_token": csrf})
        odd_id = http.get("/staff/students/" + "x" * 65)
        markup = http.get("/staff/students/<b>S</b>")
        no_report = http.get("/insights/backtests/..%2f..%2fetc")
    # The subject is shown escaped, never as markup.
    assert "S-PAGES-&lt;b&gt;2&lt;/b&gt;" in start.text and "<b>2</b>" not in start.text
    assert no_token.status_code == 403 and "Your choices were not saved" in no_token.text
    for refused in (bad_day, bad_kind):
        assert refused.status_code == 400, refused.text[:300]
        assert "Your correction request was not sent" in refused.text
        assert "<script>" not in refused.text.split("</header>")[1]
    assert not_staff.status_code == 403 and not_insights.status_code == 403
    assert not_student.status_code == 403 and bad_item.status_code in (403, 404)
    assert unknown.status_code == 404 and "Not recorded" in unknown.text
    assert student_opens.status_code == 403 and student_queue.status_code == 403
    assert no_reason.status_code == 400 and "say why" in no_reason.text
    assert no_request.status_code == 404 and "Not recorded" in no_request.text
    assert bad_request.status_code in (403, 404)
    for missing in (odd_id, markup):
        assert missing.status_code == 404 and "There is no such student" in missing.text
    assert "<b>S</b>" not in markup.text
    assert no_report.status_code in (403, 404)
    for page in (no_token, bad_day, not_staff, not_student, unknown, no_reason, markup):
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
