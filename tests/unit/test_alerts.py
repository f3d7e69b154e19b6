"""The Prometheus alert rules: valid, unit-tested, documented, and reading only our metrics.

promtool (Debian's ``prometheus`` package) checks the rules and the config and runs the rule
unit tests in ``ops/prometheus/alerts.test.yml``; those tests skip, saying how to install it,
only when promtool is missing. The rest is pure parsing: every alert is tested, labelled,
annotated and has a runbook section, and its expression names only metrics the product
exports and labels that cannot identify a person.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RUNBOOK = ROOT / "ops" / "alerts.md"
COMPOSE = ROOT / "docker-compose.yml"

# Where docker-compose.yml mounts the rules, and so what prometheus.yml must load.
MOUNTED_RULES = "/etc/prometheus/alerts.yml"
RUNBOOK_PREFIX = "ops/alerts.md#"

# The metric contract: what the product exports for alerting (ops/metrics.py).
CONTRACT_METRICS = frozenset(
    {
        "engagement_events_received_total",
        "engagement_deadlettered_total",
        "engagement_consumer_lag",
        "engagement_consumer_committed_offset",
        "engagement_source_gaps_total",
        "engagement_source_health",
        "engagement_deliveries_total",
        "engagement_interventions_total",
        "engagement_interventions_outbox",
        "engagement_redis_waits_total",
        "engagement_offset_regressions_total",
        "engagement_ingest_units_total",  # ops/ingest_metrics.py
    }
)
# Every label an alert may group by, match on or show: properties of the system (plus the
# scrape's job/instance/role and the alert's severity), none of which can name a person.
ALLOWED_LABELS = frozenset(
    {
        "job",
        "instance",
        "role",
        "severity",
        "group",
        "topic",
        "partition",
        "source",
        "location",
        "reason",
        "channel",
        "result",
        "outcome",
        "stage",
        "sender",  # an ingest token's sender: a system (lms, scanners), never a person
    }
)
SEVERITIES = frozenset({"page", "ticket"})

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's prometheus package (apt-get install prometheus)",
)
# The ruleset's unit tests compare a source with the same hour a week earlier, so promtool
# evaluates every rule once a minute over a week of test time: tens of seconds of CPU.
PROMTOOL_TIMEOUT_S = 240


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> list[dict[str, Any]]:
    groups = _load_yaml(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str, cwd: Path = ROOT) -> str:
    """Run promtool; fail the test with its whole output unless it succeeds."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def _promtool_major_version() -> int:
    output = _promtool("--version")
    found = re.search(r"version (\d+)\.", output)
    assert found, f"cannot read promtool's version from:\n{output}"
    return int(found.group(1))


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, '-' for ' '."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#{1,6}\s+(.+)", line)):
            anchors.add(_github_anchor(heading.group(1)))
    return anchors


def _labels_used(rule: dict[str, Any]) -> set[str]:
    """Label names a rule groups by, matches on, creates or shows."""
    expr = rule["expr"]
    names: set[str] = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        names.update(n.strip() for n in clause.split(",") if n.strip())
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        names.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    names.update(re.findall(r'label_replace\(.*?,\s*"(\w+)"', expr, flags=re.DOTALL))
    for text in rule.get("annotations", {}).values():
        names.update(re.findall(r"\$labels\.(\w+)", text))
    names.update(rule.get("labels", {}))
    return names


# --- promtool ------------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    output = _promtool("check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(_alerts())} rules found" in output, output


@needs_promtool
def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    config = _load_yaml(CONFIG)
    assert config["rule_files"] == [MOUNTED_RULES]
    # promtool resolves rule_files on this machine: point it at the repository's file.
    config["rule_files"] = [str(ALERTS)]
    if _promtool_major_version() < 3:
        # Compose runs Prometheus 3; Debian bookworm's promtool is 2.42, which does not know
        # this Prometheus 3 scrape setting and refuses the whole file for it.
        for job in config["scrape_configs"]:
            job.pop("fallback_scrape_protocol", None)
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    output = _promtool("check", "config", str(copy))
    assert f"SUCCESS: {len(_alerts())} rules found" in output, output


@needs_promtool
@pytest.mark.slow
def test_promtool_rule_unit_tests_pass() -> None:
    output = _promtool("test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output, output


# --- the rules, parsed ---------------------------------------------------------------------


def test_every_alert_fires_in_a_test_and_has_a_near_miss() -> None:
    tests = _load_yaml(ALERT_TESTS)
    assert tests["rule_files"] == [ALERTS.name]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fires == set(), "alerts never shown firing in alerts.test.yml"
    assert names - quiet == set(), "alerts without a case where they must not fire"
    assert (fires | quiet) - names == set(), "tests for alerts that do not exist"


def test_every_alert_is_named_labelled_and_annotated() -> None:
    alerts = _alerts()
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names))
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"Engagement(?:[A-Z][a-z]+)+", name), name
        assert rule.get("for"), f"{name} has no 'for' duration"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name} has no {key}"
        assert annotations["runbook_url"] == RUNBOOK_PREFIX + name.lower(), name


def test_every_runbook_url_has_its_section_and_every_section_an_alert() -> None:
    anchors = _runbook_anchors()
    urls = {rule["annotations"]["runbook_url"] for rule in _alerts()}
    wanted = {url.removeprefix(RUNBOOK_PREFIX) for url in urls}
    assert wanted - anchors == set(), "runbook_url anchors with no heading in ops/alerts.md"
    documented = {a for a in anchors if a.startswith("engagement")}
    assert documented - wanted == set(), "runbook sections for alerts that do not exist"


def test_expressions_read_only_contract_metrics() -> None:
    for rule in _alerts():
        used = set(re.findall(r"engagement_[a-z_]+", rule["expr"]))
        assert used or "up{" in rule["expr"], f"{rule['alert']} reads no metric"
        assert used <= CONTRACT_METRICS, f"{rule['alert']}: {sorted(used - CONTRACT_METRICS)}"


def test_no_alert_groups_by_or_shows_a_label_that_could_name_a_person() -> None:
    for rule in _alerts():
        used = _labels_used(rule)
        assert used <= ALLOWED_LABELS, f"{rule['alert']}: {sorted(used - ALLOWED_LABELS)}"


def test_label_parser_finds_grouping_matching_and_annotation_labels() -> None:
    rule = {
        "expr": 'sum by (topic) (x{student_id="s"}) and on (staff) '
        'label_replace(y{a="b"}, "pseudonym", "$1", "topic", "(.*)")',
        "labels": {"severity": "page"},
        "annotations": {"summary": "{{ $labels.email }}"},
    }
    assert _labels_used(rule) == {
        "topic",
        "student_id",
        "staff",
        "a",
        "pseudonym",
        "email",
        "severity",
    }


def test_prometheus_loads_the_rules_where_compose_mounts_them() -> None:
    assert _load_yaml(CONFIG)["rule_files"] == [MOUNTED_RULES]
    service = _load_yaml(COMPOSE)["services"]["prometheus"]
    mounts: set[tuple[Path, str]] = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if source.startswith("."):
            mounts.add(((ROOT / source).resolve(), target))
    mounted = {
        source / Path(MOUNTED_RULES).relative_to(target)
        for source, target in mounts
        if Path(MOUNTED_RULES).is_relative_to(target)
    }
    assert ALERTS.resolve() in mounted, (
        f"docker-compose.yml does not mount {ALERTS.relative_to(ROOT)} at {MOUNTED_RULES}: "
        "Prometheus would start without any alert rules"
    )


def test_github_anchor() -> None:
    assert _github_anchor("EngagementWorkerDown") == "engagementworkerdown"
    assert _github_anchor("Where to look first") == "where-to-look-first"
    assert _github_anchor("Alerts: what each one means") == "alerts-what-each-one-means"
