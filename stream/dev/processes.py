"""Child processes of the product (worker, notifier, receiver) for the demo, bench and tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from schemas.errors import EngagementError
from stream.probes import http_get


class ProcessError(EngagementError):
    """A child process did not start or answer in time."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, float]:
    """Read a process's /metrics into ``{"name{label=value,...}": value}`` (samples only)."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return {}
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def total(samples: Mapping[str, float], name: str) -> float:
    """Sum of every sample of one metric, whatever its labels."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


class Child:
    """One ``engagement`` sub-command running as a child process with its own log file."""

    def __init__(
        self, name: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        """Start the process (again, after a kill)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            [sys.executable, "-m", "stream.cli", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        """The running process id."""
        if self.proc is None:
            msg = f"{self.name} is not running"
            raise ProcessError(msg)
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, port: int, path: str = "/healthz", timeout: float = 60.0) -> None:
        """Wait until the process answers HTTP on ``port``; fail with its log tail if it died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                msg = f"{self.name} exited early; last lines of {self.log_path}:\n{self.tail()}"
                raise ProcessError(msg)
            if http_get(f"http://127.0.0.1:{port}{path}", timeout=1.0)[0] == 200:
                return
            time.sleep(0.1)
        msg = f"{self.name} did not answer on port {port} in {timeout:.0f}s:\n{self.tail()}"
        raise ProcessError(msg)

    def tail(self, lines: int = 25) -> str:
        """The last lines of the process's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: the crash a worker must survive."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def peak_rss_mib(self) -> float | None:
        """Peak resident memory (VmHWM) of the running process, in MiB."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="utf-8")
        except (OSError, ProcessError):
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None
