"""The deployment files agree with the code: compose, Dockerfile, Prometheus and Grafana.

Pure parsing; no Docker engine is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.ingest_metrics import create_ingest_metrics
from ops.metrics import create_metrics
from schemas.settings import ENV
from schemas.topics import REFERENCE_KINDS, TopicNames

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
DATASOURCES = ROOT / "ops" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = ROOT / "ops" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "engagement.json"

# The engagement processes and the role each runs (the worker is one scalable service).
ENGAGEMENT_SERVICES = ("worker", "notifier")
ROLES = {"worker": "worker", "notifier": "notifier"}
# The series names Prometheus scrapes for each family type (labelled families have no samples
# until a child exists, so the names come from the family name and its type).
METRIC_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = _load_yaml(COMPOSE)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(str(part) for part in command) if isinstance(command, list) else str(command)


def _one_shot(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services others wait on to *finish*: jobs, which a healthcheck does not fit."""
    jobs: set[str] = set()
    for service in services.values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            for name, spec in depends.items():
                if (spec or {}).get("condition") == "service_completed_successfully":
                    jobs.add(name)
    return jobs


def _metric_names() -> set[str]:
    names: set[str] = set()
    families = [*create_metrics().registry.collect(), *create_ingest_metrics().registry.collect()]
    for family in families:
        names.update(family.name + suffix for suffix in METRIC_SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _interpolate_defaults(value: str) -> str:
    """Compose interpolation with an empty environment: ``${VAR:-default}`` becomes default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?[^}]*\}", r"\1", value)


def _image_is_pinned(image: str) -> bool:
    name, _, digest = _interpolate_defaults(image).partition("@")
    if digest:
        return digest.startswith("sha256:")
    last = name.rsplit("/", 1)[-1]
    repository, _, tag = last.partition(":")
    return bool(repository) and bool(tag) and tag != "latest"


# --- compose ---------------------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    jobs = _one_shot(services)
    assert jobs == {"topics"}
    for name, service in services.items():
        if name in jobs:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), name
        assert check.get("test"), name
        if name in ENGAGEMENT_SERVICES:  # readiness: broker, Redis, partitions, not stuck,
            # answered by the process of the service's own role
            assert check["test"] == ["CMD", "engagement", "check", "--role", ROLES[name]], name


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        assert "latest" not in image, f"{name}: {image}"
        assert _image_is_pinned(image), f"{name}: {image} has no tag"


def test_third_party_images_are_the_expected_pinned_ones(
    services: dict[str, dict[str, Any]],
) -> None:
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", services["kafka"]["image"])
    assert services["topics"]["image"] == services["kafka"]["image"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-alpine)?", services["redis"]["image"])
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", services["prometheus"]["image"])
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", services["grafana"]["image"])


def test_engagement_services_are_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ENGAGEMENT_SERVICES:
        service = services[name]
        build = service["build"]
        context = build["context"] if isinstance(build, dict) else build
        assert (COMPOSE.parent / context / "Dockerfile").is_file(), name
    assert _command(services["worker"]) == "worker"
    assert _command(services["notifier"]) == "notifier"
    assert services["worker"]["deploy"]["replicas"] >= 2  # two workers unless scaled
    shared = {
        k: v
        for k, v in _environment(services["notifier"]).items()
        if not k.startswith(("ENGAGEMENT_WEBHOOK", "ENGAGEMENT_CHANNELS", "ENGAGEMENT_QUIET"))
    }
    assert _environment(services["worker"]) == shared  # one environment for both roles


def test_engagement_environment_uses_only_settings_names(
    services: dict[str, dict[str, Any]],
) -> None:
    known = set(ENV.values())
    for name in ENGAGEMENT_SERVICES:
        unknown = set(_environment(services[name])) - known
        assert not unknown, f"{name} sets variables schemas/settings.py does not read: {unknown}"


def test_engagement_environment_points_at_the_stack(services: dict[str, dict[str, Any]]) -> None:
    for name in ENGAGEMENT_SERVICES:
        env = _environment(services[name])
        assert env[ENV["kafka_bootstrap_servers"]] == "kafka:9092", name
        assert env[ENV["redis_url"]] == "redis://engagement@redis:6379/0", name  # ACL user
        assert env[ENV["web_port"]] == "6066", name
        assert ENV["log_level"] in env, name
        assert env[ENV["partitions"]] == _environment(services["topics"])["PARTITIONS"], name


def test_secrets_are_required_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    for name in ENGAGEMENT_SERVICES:
        key = _environment(services[name])[ENV["pseudonym_key"]]
        assert re.fullmatch(r"\$\{ENGAGEMENT_PSEUDONYM_KEY:\?[^}]+\}", key), name
    webhook = _environment(services["notifier"])[ENV["webhook_url"]]
    assert re.fullmatch(r"\$\{ENGAGEMENT_WEBHOOK_URL:\?[^}]+\}", webhook)
    secret = _environment(services["notifier"])[ENV["webhook_secret"]]
    assert re.fullmatch(r"\$\{ENGAGEMENT_WEBHOOK_SECRET:\?[^}]+\}", secret)


def test_engagement_services_wait_for_their_dependencies(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ENGAGEMENT_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["topics"]["condition"] == "service_completed_successfully", name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_redis_persists_with_aof(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = _command(redis)
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    assert not any("zookeeper" in name for name in services)
    for service in services.values():
        assert "zookeeper" not in str(service.get("image", ""))
    env = _environment(services["kafka"])
    assert not any("ZOOKEEPER" in key for key in env)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "BROKER://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]  # SASL: see below
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")


def test_topics_job_creates_every_topic(services: dict[str, dict[str, Any]]) -> None:
    script = _command(services["topics"])
    assert "bin=/opt/kafka/bin" in script
    assert "kafka-topics.sh" in script
    assert _environment(services["topics"])["PARTITIONS"] == "${ENGAGEMENT_PARTITIONS:-12}"
    lines = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\s*ensure\s+(\S+)\s+(\S+)\s*$", script, re.MULTILINE)
    }
    assert set(lines) == set(TopicNames().all)
    for raw in TopicNames().raw_all:
        assert "retention.ms=259200000" in lines[raw], raw  # 3 days
    assert "retention.ms=2592000000" in lines[TopicNames().deadletter]  # 30 days
    assert "retention.ms=-1" in lines[TopicNames().interventions]
    assert "retention.ms=-1" in lines[TopicNames().preferences]  # opt-out history
    for kind in REFERENCE_KINDS:
        assert lines[TopicNames().reference(kind)] == "cleanup.policy=compact"


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[0])
    assert "pip install ." in text
    assert re.search(r"^USER (?!root\b|0\b)\S+", text, re.MULTILINE)
    assert 'ENTRYPOINT ["engagement"]' in text
    assert 'CMD ["worker"]' in text
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert 'CMD ["engagement", "check"]' in healthcheck  # readiness, not only liveness


# --- Prometheus and Grafana ------------------------------------------------------------------


def test_prometheus_scrapes_workers_and_notifier(services: dict[str, dict[str, Any]]) -> None:
    config = _load_yaml(PROMETHEUS)
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):  # every replica of a scaled service
            assert dns["type"] == "A"
            targets.update(f"{name}:{dns['port']}" for name in dns["names"])
    for name in ENGAGEMENT_SERVICES:
        port = _environment(services[name])[ENV["web_port"]]
        assert f"{name}:{port}" in targets, name


def test_grafana_provisioning_matches_the_dashboard(dashboard: dict[str, Any]) -> None:
    datasources = _load_yaml(DATASOURCES)["datasources"]
    assert [ds["uid"] for ds in datasources] == ["prometheus"]
    assert datasources[0]["type"] == "prometheus"
    assert datasources[0]["url"] == "http://prometheus:9090"
    providers = _load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"
    assert dashboard["schemaVersion"] == 39
    for panel in _panels(dashboard):
        for target in [panel, *panel.get("targets", [])]:
            if "datasource" in target:
                assert target["datasource"]["uid"] == "prometheus", panel["title"]


def test_dashboard_queries_use_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = _metric_names() | {"up"}  # Prometheus's own scrape health
    used: set[str] = set()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            names = _promql_metrics(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']!r}"
            unknown = names - exported
            assert not unknown, f"{panel['title']}: unknown metrics {unknown}"
            used |= names
    required = {
        "engagement_events_received_total",
        "engagement_signals_applied_total",
        "engagement_deadlettered_total",
        "engagement_duplicates_total",
        "engagement_nudges_total",
        "engagement_interventions_total",
        "engagement_deliveries_total",
        "engagement_batch_seconds_bucket",
        "engagement_publish_to_nudge_seconds_bucket",
        "engagement_redis_waits_total",
        # What the ops issue asks the dashboard to show: lag, latency percentiles, source
        # health and worker count.
        "engagement_consumer_lag",
        "engagement_event_to_processed_seconds_bucket",
        "engagement_source_health",
        "up",
    }
    assert required <= used


def test_promql_parser_finds_metric_names() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, stage) (rate(foo_bucket{stage="x"}[5m])))'
        " / on (stage) group_left bar_total offset 1h"
    )
    assert _promql_metrics(expr) == {"foo_bucket", "bar_total"}


# --- as a university runs it: scaling, its own files, secrets -------------------------------

OPS_README = ROOT / "ops" / "README.md"
CONFIG_FILES = {
    ENV["rules_file"]: "schemas/rules.default.toml",
    ENV["messages_file"]: "sinks/messages.default.toml",
    ENV["teams_file"]: "sinks/teams.default.toml",
}


def _secrets_of(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


def _secret_path(compose: dict[str, Any], service: dict[str, Any], path: str) -> str:
    """The secret a service reads at ``path``; fails unless the service is given it."""
    name = path.removeprefix("/run/secrets/")
    assert path.startswith("/run/secrets/") and name in compose["secrets"], path
    assert name in _secrets_of(service), f"{path} is not given to this service"
    return name


def test_workers_scale_without_colliding(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose up --scale worker=N`: one service, nothing fixed per replica."""
    assert not [name for name in services if re.fullmatch(r"worker-?\d+", name)]
    worker = services["worker"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, f"{fixed} would make replicas of `worker` collide"


def test_scaling_workers_leaves_the_one_shot_topics_job_alone(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert topics["restart"] == "no"
    assert "deploy" not in topics and "scale" not in topics  # one run, never replicated
    assert set(topics.get("depends_on", {})) == {"kafka"}  # not on the workers it serves
    for name in ENGAGEMENT_SERVICES:
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully", name
    script = _command(topics)
    # Re-run on every `up`: creating is idempotent and the partition count is checked.
    assert script.count("--create --if-not-exists") == 1
    assert 'if [ "$$count" != "$$PARTITIONS" ]' in script


def test_the_rules_messages_and_teams_files_are_mounted(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ENGAGEMENT_SERVICES:
        service, env = services[name], _environment(services[name])
        mounts = {}
        for volume in service["volumes"]:
            source, target, mode = str(volume).rsplit(":", 2)
            mounts[target] = (_interpolate_defaults(source), mode)
        for variable, shipped in CONFIG_FILES.items():
            target = env[variable]
            assert target in mounts, f"{name}: {variable}={target} is not mounted"
            source, mode = mounts[target]
            assert mode == "ro", f"{name}: {target} must be read-only"
            assert source == f"./{shipped}", f"{name}: default {source} is not the shipped file"
            assert (COMPOSE.parent / source).is_file()


def test_grafana_has_no_default_admin_password(services: dict[str, dict[str, Any]]) -> None:
    env = _environment(services["grafana"])
    password = env["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password
    assert _interpolate_defaults(env["GF_AUTH_ANONYMOUS_ENABLED"]) == "false"
    assert "admin" not in _interpolate_defaults(password)


def test_kafka_accepts_only_scram_logins_from_the_network(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    kafka = services["kafka"]
    env = _environment(kafka)
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, _, address = listener.partition("://")
        if protocols[name] == "PLAINTEXT":  # only the controller, on the container's loopback
            assert name == env["KAFKA_CONTROLLER_LISTENER_NAMES"]
            assert address.startswith("localhost:"), listener
        else:
            assert protocols[name] == "SASL_PLAINTEXT", listener
    for advertised in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        assert protocols[advertised.partition("://")[0]].startswith("SASL_"), advertised
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert not [k for k in env if k.startswith("KAFKA_") and "PASSWORD" in k]  # no secrets
    script = _command(kafka)
    assert _secrets_of(kafka) == {"kafka_admin_password", "kafka_password"}
    # The SCRAM users are created with the data volume, from the secret files.
    assert '--add-scram "SCRAM-SHA-512=[name=admin,password=$$admin]"' in script
    assert '--add-scram "SCRAM-SHA-512=[name=$$SCRAM_APP_USER,password=$$app]"' in script
    assert 'admin="$$(cat /run/secrets/kafka_admin_password)"' in script
    assert 'app="$$(cat /run/secrets/kafka_password)"' in script
    assert "refusing to start" in script  # an empty password stops it
    assert "--command-config /tmp/admin.properties" in " ".join(kafka["healthcheck"]["test"])
    # The topics job logs in as admin on every call.
    topics = _command(services["topics"])
    assert _secrets_of(services["topics"]) == {"kafka_admin_password"}
    calls = re.findall(r'"\$\$bin/kafka-\w+\.sh" [^\n]*', topics)
    assert len(calls) == 3
    assert all('"$${login[@]}"' in call for call in calls), calls
    # The product logs in as the application user, with the mechanism the broker offers.
    for name in ENGAGEMENT_SERVICES:
        app = _environment(services[name])
        assert app[ENV["kafka_security_protocol"]] == "SASL_PLAINTEXT", name
        assert app[ENV["kafka_sasl_mechanism"]] == env["KAFKA_SASL_ENABLED_MECHANISMS"], name
        assert app[ENV["kafka_sasl_username"]] == env["SCRAM_APP_USER"], name
        path = app[ENV["kafka_sasl_password_file"]]
        assert _secret_path(compose, services[name], path) == "kafka_password", name


def test_redis_requires_a_password_and_gives_the_product_a_limited_user(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    env = _environment(redis)
    script = _command(redis)
    assert _secrets_of(redis) == {"redis_password"}
    assert "printf 'user default off\\nuser %s on >%s %s\\n'" in script
    assert "--aclfile /tmp/users.acl" in script
    assert "refusing to start" in script
    rules = _interpolate_defaults(env["REDIS_APP_RULES"]).split()
    assert "-@admin" in rules and "-@dangerous" in rules
    assert "~es:*" in rules and "~*" not in rules  # its own keys only (ENGAGEMENT_KEY_PREFIX)
    check = " ".join(redis["healthcheck"]["test"])
    assert 'REDISCLI_AUTH="$$(cat /run/secrets/redis_password)"' in check
    assert '--user "$$REDIS_APP_USER"' in check
    for name in ENGAGEMENT_SERVICES:
        app = _environment(services[name])
        url = app[ENV["redis_url"]]
        assert url == f"redis://{env['REDIS_APP_USER']}@redis:6379/0", name
        path = app[ENV["redis_password_file"]]
        assert _secret_path(compose, services[name], path) == "redis_password", name


def test_the_product_settings_accept_the_compose_environment(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """What a worker reads in its container: logins for Kafka (SASL/SCRAM) and Redis."""
    from schemas.settings import load_settings

    for variable in ENV.values():
        monkeypatch.delenv(variable, raising=False)
    for name, value in _environment(services["worker"]).items():
        value = _interpolate_defaults(value) or "k" * 24  # a required secret
        if value.startswith("/run/secrets/"):
            secret = tmp_path / value.rsplit("/", 1)[1]
            secret.write_text("from-the-secret-file\n", encoding="utf-8")
            value = str(secret)
        elif value.startswith("/etc/engagement/"):
            value = str(COMPOSE.parent / CONFIG_FILES[name])
        monkeypatch.setenv(name, value)
    settings = load_settings()
    options = settings.kafka_client_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_plain_username"] == "engagement"
    assert options["sasl_plain_password"] == "from-the-secret-file"  # noqa: S105  # test value
    assert settings.redis_url is not None
    assert settings.redis_url_with_password(settings.redis_url) == (
        "redis://engagement:from-the-secret-file@redis:6379/0"
    )


def _required_variables(compose: dict[str, Any]) -> set[str]:
    """Variables compose refuses to start without (``${VAR:?…}``), and the secrets' sources."""
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", text))
    required |= {spec["environment"] for spec in compose["secrets"].values()}
    return required


def test_every_secret_is_documented_in_the_ops_readme(compose: dict[str, Any]) -> None:
    text = OPS_README.read_text(encoding="utf-8")
    section = text.split("\n## Secrets", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, re.MULTILINE))
    required = _required_variables(compose)
    assert {"KAFKA_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert required - documented == set(), "secrets ops/README.md does not explain"
    assert documented - required == set(), "ops/README.md lists secrets compose does not use"
