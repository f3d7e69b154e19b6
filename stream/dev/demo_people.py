"""The demo's people: the API with the built-in local issuer (a local setup only), and a
sign-in link for one student, their personal tutor and one insights user.

On a terminal the demo keeps the API, the broker and Redis up until Enter is pressed, so the
links can be opened in a browser. Elsewhere (CI, a pipe) it follows the student's link itself
— sign-in through the local issuer, the session cookie, then ``/v1/me`` — and reports what the
student would see, so the links are shown to work either way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import redis

from agents.model.pseudonym import Pseudonymiser
from schemas.keys import Keys
from stream.dev.processes import Child, free_port
from stream.dev.simulate import Simulation

DEMO_INSIGHTS_USER = "IN-DEMO"  # a made-up staff id for the insights role


@dataclass(frozen=True)
class People:
    """The running API and the three people the demo signs in."""

    api: Child
    port: int

    def link(self, role: str, subject: str, page: str) -> str:
        hint = quote(f"{role}:{subject}", safe="")
        return f"http://127.0.0.1:{self.port}/auth/login?login_hint={hint}&next={quote(page)}"


def start_api(env: dict[str, str], workdir: Path) -> People:
    """``engagement api`` on a free port with the local issuer, answering before it returns."""
    port = free_port()
    api_env = {
        **env,
        "ENGAGEMENT_API_PORT": str(port),
        "ENGAGEMENT_OIDC_ISSUER": "local",
        "ENGAGEMENT_LOCAL_SETUP": "yes",
    }
    api = Child("api", ["api"], api_env, workdir).start()
    api.wait_http(port)
    return People(api, port)


def signed_in_view(url: str) -> dict[str, object]:
    """Follow a sign-in link as a browser would and read ``/v1/me`` with the session cookie."""
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        client.get(url)
        answer = client.get(url.split("/auth/")[0] + "/v1/me")
        answer.raise_for_status()
        body: dict[str, object] = answer.json()
        return body


def show_people(
    people: People, student: str, tutor: str | None, say: Callable[[str], None]
) -> None:
    """Print the three links; keep everything up on a terminal, else check the student's."""
    links = [
        ("a student (their own page)", people.link("student", student, "/me")),
        (
            "their personal tutor (the review queue)",
            people.link("tutor", tutor, "/staff/review") if tutor else None,
        ),
        ("an insights user (aggregates)", people.link("insights", DEMO_INSIGHTS_USER, "/insights")),
    ]
    say("\nSign in (local issuer: anyone who can reach it can be anyone; demo only):")
    for who, url in links:
        if url is not None:
            say(f"  {who}: {url}")
    if sys.stdin.isatty():
        say("\nThe API, broker and Redis stay up while you look. Press Enter to stop.")
        try:
            input()
        except EOFError:
            pass
        return
    view = signed_in_view(links[0][1] or "")
    engagement = view.get("engagement")
    band = engagement.get("band") if isinstance(engagement, dict) else None
    shown = band or "not yet known"
    say(f"  (checked: the student's link signs in and /v1/me answers: band {shown})")


def first_nudged(
    client: redis.Redis, prefix: str, sim: Simulation, pseudonymise: Pseudonymiser
) -> tuple[str, str]:
    """The first simulated student with an intervention record (the demo's example)."""
    keys = Keys(prefix)
    for student_id in sorted(sim.truth.students):
        pseudonym = pseudonymise(student_id)
        if client.exists(keys.interventions(pseudonym)):
            return student_id, pseudonym
    first = sorted(sim.truth.students)[0]
    return first, pseudonymise(first)
