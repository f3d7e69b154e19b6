"""``engagement token``: an access token from the built-in local issuer, for scripts (local
setups only: ENGAGEMENT_OIDC_ISSUER=local and ENGAGEMENT_LOCAL_SETUP=yes)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from stream.cli.helptext import add_command


class _LocalSettings:
    """The few settings a token needs: the API's sign-in fields and the state folder.

    Read on their own, so a script can mint a token without the broker's and Redis's
    settings (the pseudonym key above all) being present."""

    def __init__(self) -> None:
        from pydantic import ValidationError

        from schemas.api_settings import API_ENV, ApiSettings
        from schemas.errors import ConfigError
        from schemas.settings import ENV, describe_validation_error

        values = {env: os.environ[env] for env in API_ENV.values() if env in os.environ}
        try:
            self.api = ApiSettings.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None
        self.state_dir = Path(os.environ.get(ENV["state_dir"], ".engagement"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


def cmd_token(args: argparse.Namespace) -> int:
    """Mint a token (or rotate the local issuer's key) and print only that."""
    from schemas.access import Role
    from schemas.errors import ConfigError
    from stream.api.issuer import LocalIssuer

    settings = _LocalSettings()
    if not (settings.api.uses_local_issuer() and settings.api.local_setup):
        msg = (
            "engagement token mints tokens of the built-in development issuer only: set "
            "ENGAGEMENT_OIDC_ISSUER=local and ENGAGEMENT_LOCAL_SETUP=yes (a local setup); "
            "elsewhere, ask your identity provider for a token"
        )
        raise ConfigError(msg)
    issuer = LocalIssuer.from_settings(settings)
    if args.rotate_key:
        print(issuer.keys.rotate(keep_s=args.keep_minutes * 60.0))
        return 0
    if not args.role or not args.subject:
        msg = "engagement token needs --role and --subject (or --rotate-key)"
        raise ConfigError(msg)
    roles = [Role(name) for name in args.role]
    print(issuer.mint(args.subject, roles, seconds=args.minutes * 60.0))
    return 0


def _minutes(value: str) -> float:
    minutes = float(value)
    if not 0 < minutes <= 24 * 60:
        msg = "minutes must be more than 0 and at most 1440"
        raise argparse.ArgumentTypeError(msg)
    return minutes


def add_parsers(sub: Any) -> None:
    """Register ``token`` on the ``engagement`` parser."""
    from schemas.access import Role

    token = add_command(
        sub,
        "token",
        "a token from the local development issuer, for scripts",
        [
            'engagement token --role student --subject S1234567   # curl -H "Authorization: '
            'Bearer $(engagement token ...)"',
            "engagement token --role tutor --subject T001 --minutes 10",
            "engagement token --rotate-key            # new signing key; old one kept an hour",
        ],
        details="Prints only the token (an RS256 access token for ENGAGEMENT_OIDC_AUDIENCE, "
        "signed with the local issuer's key in ENGAGEMENT_STATE_DIR). Works only on a local "
        "setup: ENGAGEMENT_OIDC_ISSUER=local and ENGAGEMENT_LOCAL_SETUP=yes.",
    )
    token.add_argument(
        "--role",
        action="append",
        choices=[role.value for role in Role],
        help="a role the token grants (repeat for several)",
    )
    token.add_argument("--subject", help="whom it signs in: a student id or a staff id")
    token.add_argument(
        "--minutes", type=_minutes, default=60.0, help="how long it is valid (default 60)"
    )
    token.add_argument(
        "--rotate-key",
        action="store_true",
        help="add a new signing key and print its id; the old one keeps verifying for "
        "--keep-minutes",
    )
    token.add_argument(
        "--keep-minutes",
        type=_minutes,
        default=60.0,
        help="with --rotate-key: how long the old key stays in the JWKS (default 60)",
    )
    token.set_defaults(func=cmd_token)
