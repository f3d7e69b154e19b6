"""``engagement reports slc|ukvi``: the compliance reports, fetched from the API.

The command asks the running API (``ENGAGEMENT_API_URL``, default the local one on
``ENGAGEMENT_API_PORT``) with a compliance token (``--token`` or ``ENGAGEMENT_TOKEN``), so
access and the audit of every read live in one place, the API. It prints CSV, or writes it to
``--csv FILE``; ``--json`` prints the API's JSON instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from stream.cli.helptext import add_command

TOKEN_ENV = "ENGAGEMENT_TOKEN"  # noqa: S105 - the variable's name, not a token
URL_ENV = "ENGAGEMENT_API_URL"
TIMEOUT_S = 300.0  # a report over many students takes a while


def api_url() -> str:
    """Where the API is: ENGAGEMENT_API_URL, else the local API on ENGAGEMENT_API_PORT."""
    from schemas.api_settings import API_ENV, API_PORT

    found = os.environ.get(URL_ENV, "").strip()
    if found:
        return found.rstrip("/")
    port = os.environ.get(API_ENV["api_port"], "").strip() or str(API_PORT)
    return f"http://127.0.0.1:{port}"


def fetch(path: str, query: dict[str, str], token: str, *, as_csv: bool) -> bytes:
    """GET one report from the API; a refusal becomes an error naming the API's reason."""
    from schemas.errors import ConfigError, EngagementError

    base = api_url()
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        msg = f"{URL_ENV} must be an http:// or https:// address, not {base!r}"
        raise ConfigError(msg)
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "text/csv" if as_csv else "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:  # noqa: S310 - checked
            body: bytes = reply.read()
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:500]
        msg = f"the API refused the report ({exc.code}): {detail}"
        raise EngagementError(msg) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        msg = f"cannot reach the API at {base} ({reason}); is `engagement api` running?"
        raise EngagementError(msg) from None


def _token(args: argparse.Namespace) -> str:
    from schemas.errors import ConfigError

    token = (args.token or os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        msg = f"a compliance token is needed: --token or {TOKEN_ENV}"
        raise ConfigError(msg)
    return token


def _out(args: argparse.Namespace, body: bytes) -> int:
    if args.csv is not None:
        Path(args.csv).write_bytes(body)
        print(f"written: {args.csv}", file=sys.stderr)
    else:
        sys.stdout.write(body.decode("utf-8"))
    return 0


def cmd_slc(args: argparse.Namespace) -> int:
    """The SLC attendance-confirmation report for one census point."""
    query = {"census": args.census.isoformat()}
    body = fetch("/v1/reports/slc", query, _token(args), as_csv=not args.json)
    return _out(args, body)


def cmd_ukvi(args: argparse.Namespace) -> int:
    """The UKVI attendance report for a range of days."""
    query = {"from": args.first.isoformat(), "to": args.last.isoformat()}
    if args.period:
        query["period"] = args.period
    body = fetch("/v1/reports/ukvi", query, _token(args), as_csv=not args.json)
    return _out(args, body)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        msg = f"{value!r} is not a date (YYYY-MM-DD)"
        raise argparse.ArgumentTypeError(msg) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", metavar="FILE", help="write the CSV to FILE (default: print)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead")
    parser.add_argument("--token", help=f"a compliance token (default: {TOKEN_ENV})")


def add_parsers(sub: Any) -> None:
    """Register ``reports`` (slc, ukvi) on the ``engagement`` parser."""
    reports = add_command(
        sub,
        "reports",
        "SLC and UKVI compliance reports, as CSV",
        [
            "engagement reports slc --census 2027-01-20 --csv slc.csv",
            "engagement reports ukvi --from 2026-09-01 --to 2026-12-31 --csv ukvi.csv",
        ],
        details=f"Asks the API ({URL_ENV}, default the local one) with a compliance token "
        f"(--token or {TOKEN_ENV}); every report read is audited there. See docs/reports.md.",
    )
    which = reports.add_subparsers(dest="report", required=True, metavar="REPORT")
    slc = add_command(
        which,
        "slc",
        "students with no attended contact or engagement since the previous census point",
        ["engagement reports slc --census 2027-01-20 --csv slc.csv"],
    )
    slc.add_argument("--census", type=_date, required=True, help="a configured census point")
    _common(slc)
    slc.set_defaults(func=cmd_slc)
    ukvi = add_command(
        which,
        "ukvi",
        "sponsored students' contact points expected, attended and missed, per period",
        ["engagement reports ukvi --from 2026-09-01 --to 2026-12-31 --period week"],
    )
    ukvi.add_argument("--from", dest="first", type=_date, required=True, help="first day")
    ukvi.add_argument("--to", dest="last", type=_date, required=True, help="last day")
    ukvi.add_argument("--period", choices=["month", "week"], help="default: the configured one")
    _common(ukvi)
    ukvi.set_defaults(func=cmd_ukvi)
