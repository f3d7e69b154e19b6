"""A bad configuration stops start-up at once with a message that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.dev.processes import free_port

pytestmark = pytest.mark.integration


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `engagement worker` with ``env`` and no inherited engagement settings."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("ENGAGEMENT_", "KAFKA_", "REDIS_"))
    }
    clean |= {"ENGAGEMENT_STATE_DIR": str(tmp_path), **env}
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", "worker"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_pseudonym_key_is_named(tmp_path: Path) -> None:
    done = start(tmp_path)
    assert done.returncode == 2
    assert "ENGAGEMENT_PSEUDONYM_KEY" in done.stderr and "required" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_rules_file_names_the_rule_and_field(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'schema_version = 2\n[[rules]]\nid = "low_attendance"\nversion = 1\n'
        'kind = "attendance_rate"\ndescription = "Attendance below the threshold."\n'
        'sources = ["attendance"]\nwindow_days = 14\nthreshold = 2\nmin_sessions = 4\n'
        'tier = "prompt"\nroute = "student"\ncooldown_days = 14\nchannels = ["email"]\n'
        'message = "You attended {attended} of {expected} sessions."\n',
        encoding="utf-8",
    )
    # The services given do not answer either: the rules file is checked before connecting.
    done = start(
        tmp_path,
        ENGAGEMENT_PSEUDONYM_KEY="k" * 24,
        ENGAGEMENT_RULES_FILE=str(rules),
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    assert done.returncode == 2
    assert "low_attendance" in done.stderr and "field threshold" in done.stderr
    assert "line 9" in done.stderr  # where to look in the file
    assert "Traceback" not in done.stderr


def test_a_broker_that_does_not_answer_is_named(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    done = start(
        tmp_path,
        ENGAGEMENT_PSEUDONYM_KEY="k" * 24,
        KAFKA_BOOTSTRAP_SERVERS=nowhere,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    assert done.returncode == 2
    assert nowhere in done.stderr and "KAFKA_BOOTSTRAP_SERVERS" in done.stderr
    assert "Traceback" not in done.stderr
