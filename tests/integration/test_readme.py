"""A newcomer's first hour: the README's "Using it" commands, run in order from an empty folder.

Each line runs as typed, through bash, with the `engagement` of this virtualenv first on PATH
and no broker or Redis configured (so `engagement stack up` starts its own). The commands that
run until stopped (worker, receiver, notifier) start in the background, each on a free port
instead of the fixed ones in the text (other people's processes may hold 6066, 6067 or 8080
on a shared machine); a `check` line is retried until it passes, as a person would, and its
answer must name the process the line asks for. Before `stack down` the background processes
are stopped, as a person would press Ctrl-C in their terminals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stream.dev.processes import free_port, scrape, total
from stream.probes import http_get
from tests.readme_commands import LONG_RUNNING, command, using_it_block, words

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 120.0


@dataclass
class Session:
    """One terminal session: its folder, its environment, what runs in the background."""

    cwd: Path
    env: dict[str, str]
    receiver_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    background: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    transcript: list[str] = field(default_factory=list)
    applied: float = 0.0

    def typed(self, line: str) -> str:
        """The line with the README's fixed receiver port replaced by a free one."""
        return line.replace(":8080/", f":{self.receiver_port}/").replace(
            "--port 8080", f"--port {self.receiver_port}"
        )

    def run(
        self, line: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # the README's own lines, in a temporary folder
            ["/bin/bash", "-c", line],
            cwd=self.cwd,
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        self.transcript.append(f"$ {line}\n{done.stdout}{done.stderr}[exit {done.returncode}]")
        return done

    def export(self, line: str) -> None:
        """Run an `export` line and keep the environment it leaves."""
        done = self.run(f"{line}\nenv -0")
        assert done.returncode == 0, self.log()
        self.env = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)

    def start(self, name: str, line: str) -> None:
        """Start a long-running command in the background, on its own web port."""
        port = self.receiver_port if name == "receiver" else free_port()
        self.ports[name] = port
        log = (self.cwd / f"{name}.log").open("ab")
        self.background[name] = subprocess.Popen(  # as above
            ["/bin/bash", "-c", f"exec {line}"],
            cwd=self.cwd,
            env={**self.env, "ENGAGEMENT_WEB_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if name == "receiver":
            self.wait(f"{name} to answer", lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0])

    def check(self, line: str, role: str) -> str:
        """Run a `check` line until it passes, as a person retries it; its output."""
        extra = {"ENGAGEMENT_WEB_PORT": str(self.ports[role])}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.alive(role)
            done = self.run(line, extra)
            if done.returncode == 0:
                return done.stdout
            assert time.monotonic() < deadline, f"{role} never ready\n{self.log()}"
            time.sleep(1.0)

    def alive(self, name: str) -> None:
        proc = self.background[name]
        if proc.poll() is not None:
            tail = (self.cwd / f"{name}.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"{name} exited with {proc.returncode}:\n{tail}\n{self.log()}")

    def wait(self, what: str, probe: Callable[[], object]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not probe():
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.log()}"
            time.sleep(0.2)

    def stop_background(self) -> None:
        if "worker" in self.background and self.background["worker"].poll() is None:
            samples = scrape(self.ports["worker"])
            self.applied = max(self.applied, total(samples, "engagement_signals_applied_total"))
        for name, proc in reversed(list(self.background.items())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            self.transcript.append(f"[{name} stopped: exit {proc.returncode}]")

    def log(self) -> str:
        return "\n".join(self.transcript[-6:])


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENGAGEMENT_") and k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    folder = tmp_path / "newcomer"
    folder.mkdir()
    here = Session(folder, env)
    try:
        yield here
    finally:
        here.stop_background()
        if (folder / ".engagement").exists():
            here.run("engagement stack down")  # whatever happened, leave nothing running


@pytest.mark.long  # two minutes: every command of "Using it", each its own process
def test_the_using_it_commands_run_in_order_from_an_empty_folder(session: Session) -> None:
    for line in using_it_block():
        typed, name, argv = session.typed(line), command(line), words(line)
        if line.startswith("export "):
            session.export(typed)
        elif name in LONG_RUNNING:
            session.start(name, typed)
        elif name == "check":
            role = argv[-1]
            output = session.check(typed, role)
            assert f"ready: the {role} (pid {session.background[role].pid})" in output, output
            if {"worker", "notifier"} <= set(session.ports):
                check_refuses_the_wrong_process(session)
        else:
            if argv[1:] == ["stack", "down"]:
                session.stop_background()  # Ctrl-C in the other terminals first
            done = session.run(typed)
            assert done.returncode == 0, session.log()
            if argv[1:] != ["stack", "down"]:
                for running in session.background:
                    session.alive(running)

    transcript = "\n".join(session.transcript)
    assert "broker  " in transcript  # stack up said where the broker is
    assert "simulated " in transcript
    assert "\nstopped\n" in transcript  # stack down stopped what stack up started
    assert (session.cwd / "sim" / "vle.jsonl").exists()
    assert (session.cwd / "r.jsonl").exists()
    assert session.applied > 0, "the worker applied nothing that was published"
    assert all(proc.poll() is not None for proc in session.background.values())


def check_refuses_the_wrong_process(session: Session) -> None:
    """A worker and a notifier on one host, on their own ports: `check --role worker` pointed
    at the notifier's port says the notifier answered, and fails; without a role it passes and
    says who answered."""
    assert session.ports["worker"] != session.ports["notifier"]
    url = f"http://127.0.0.1:{session.ports['notifier']}/readyz"
    pid = session.background["notifier"].pid
    wrong = session.run(f"engagement check --role worker --url {url}")
    assert wrong.returncode == 1, session.log()
    assert f"the notifier (pid {pid}) answered at {url}, not the worker" in wrong.stderr
    either = session.run(f"engagement check --url {url}")
    assert either.returncode == 0, session.log()
    assert f"ready: the notifier (pid {pid}) at {url}" in either.stdout
