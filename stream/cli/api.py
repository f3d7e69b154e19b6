"""``engagement api``: the people-facing API (students' own data, staff access by role)."""

from __future__ import annotations

import argparse
from typing import Any

from stream.cli.helptext import add_command


def cmd_api(args: argparse.Namespace) -> int:
    """Run the API in the foreground, or print its OpenAPI document."""
    if args.openapi:
        from stream.api.app import openapi_text

        print(openapi_text(), end="")
        return 0
    from stream.api.app import run
    from stream.runtime import load_runtime

    run(load_runtime())
    return 0


def add_parsers(sub: Any) -> None:
    """Register api on the ``engagement`` parser."""
    api = add_command(
        sub,
        "api",
        "the API: students' own data, staff access by role, audited",
        [
            "engagement api   # with ENGAGEMENT_OIDC_ISSUER set (local: a developer machine)",
            "engagement api --openapi > docs/api.openapi.json",
        ],
        details="Serves /v1/me (a student's own data), /v1/students/{id} (staff, by role) and "
        "/healthz, /readyz, /metrics on ENGAGEMENT_API_PORT (default 8090), bound to "
        "ENGAGEMENT_WEB_BIND. Sign-in: bearer tokens from ENGAGEMENT_OIDC_ISSUER. Without "
        "KAFKA_BOOTSTRAP_SERVERS and REDIS_URL it uses the stack of `engagement stack up`. "
        "See docs/api.md.",
    )
    api.add_argument("--openapi", action="store_true", help="print the OpenAPI document and stop")
    api.set_defaults(func=cmd_api)
