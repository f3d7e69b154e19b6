"""``engagement ingest``: the HTTP ingest service for LMSs, LRSs, scanners and door controllers."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from stream.cli.helptext import add_command


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run the ingest service in the foreground, or print a token's hash."""
    if args.hash_token:
        from schemas.ingest_settings import MIN_TOKEN_CHARS, token_hash

        typed = args.hash_token == "-"  # noqa: S105  # '-' asks for the token, it is none
        token = getpass.getpass("token: ") if typed else args.hash_token
        if len(token) < MIN_TOKEN_CHARS:
            print(f"a token must have at least {MIN_TOKEN_CHARS} characters")
            return 1
        print(token_hash(token))
        return 0
    from stream.ingest.app import run
    from stream.runtime import load_runtime

    run(load_runtime())
    return 0


def add_parsers(sub: Any) -> None:
    """Register ingest on the ``engagement`` parser."""
    ingest = add_command(
        sub,
        "ingest",
        "HTTP ingest: xAPI, Caliper, Canvas, Moodle, own events",
        [
            "engagement ingest   # with ENGAGEMENT_INGEST_TOKENS=lms=<token> set",
            "engagement ingest --hash-token -   # a line for ENGAGEMENT_INGEST_TOKENS_FILE",
        ],
        details="Serves POST /xapi/statements (and PUT, GET /xapi/about), /caliper, "
        "/canvas/live-events, /moodle/log and /events/{swipe,attendance,vle,library} on "
        "ENGAGEMENT_INGEST_PORT (default 8088), answering only after the broker has the events. "
        "Without KAFKA_BOOTSTRAP_SERVERS and REDIS_URL it uses the stack of `engagement stack "
        "up`, and without tokens there a development token kept in the state folder. "
        "See docs/ingest.md.",
    )
    ingest.add_argument(
        "--hash-token",
        metavar="TOKEN",
        help="print the SHA-256 of TOKEN ('-' to type it) for ENGAGEMENT_INGEST_TOKENS_FILE",
    )
    ingest.set_defaults(func=cmd_ingest)
