"""The key register and the Lua scripts: every key declared once, found again by its name,
and no script building a key name of its own."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from agents.store import scripts
from schemas.keys import FAMILIES, REGISTER, Keys, Retention, family_of, register_table

PREFIX = "es"
P = "p_" + "ab" * 16
R = "r_" + "cd" * 16
N = "n_" + "ef" * 16
LUA = Path(scripts.__file__).with_name(scripts.FOLDER)


def test_every_family_is_declared_once_with_what_it_holds() -> None:
    assert len({f.name for f in REGISTER}) == len(REGISTER)
    assert len({f.template for f in REGISTER}) == len(REGISTER)
    for family in REGISTER:
        assert family.template.startswith("{p}:"), family.name
        assert family.holds.endswith((".", ")")) and len(family.holds) > 20, family.name
        assert isinstance(family.retention, Retention)
        assert family.expiry, family.name
        assert family.hash_tag in family.fields or family.hash_tag in family.template
        if family.about == "name":
            assert "pseudonym" in family.fields, family.name


def test_stores_build_every_family_through_one_method_each() -> None:
    methods = {name for name, _ in inspect.getmembers(Keys, inspect.isfunction)} - {"__init__"}
    assert methods == set(FAMILIES)


@pytest.mark.parametrize(
    ("key", "family"),
    [
        (f"es:s:{P}", "state"),
        (f"es:seen:{P}:739890", "seen"),
        ("es:members:3", "members"),
        ("es:offsets:t.engagement-worker", "offsets"),
        ("es:act:swipe:739890", "activity"),
        (f"es:iv:{P}", "interventions"),
        ("es:iv:outbox", "outbox"),
        ("es:iv:outbox:lock", "outbox_lock"),
        (f"es:prefs:{P}", "preferences"),
        (f"es:prefs:{P}:history", "preference_history"),
        ("es:prefs:applied:chg-1", "preference_applied"),
        (f"es:recorded:{R}", "recorded"),
        (f"es:deferred:nudge:{N}", "deferred_nudge"),
        ("es:review:queue:tutor:T023", "review_queue"),
        ("es:review:queue:lead:T001", "review_queue"),
        ("es:audit", "audit"),
    ],
)
def test_a_key_is_found_again_by_its_name(key: str, family: str) -> None:
    found = family_of(key, PREFIX)
    assert found is not None and found.name == family


@pytest.mark.parametrize(
    "key",
    ["es:iv:S1234567", "es:s:someone", "other:s:" + P, "es:unknown", f"es:seen:{P}:x"],
)
def test_an_undeclared_key_is_not_claimed_by_any_family(key: str) -> None:
    assert family_of(key, PREFIX) is None


def test_keys_round_trip_through_the_register() -> None:
    keys = Keys(PREFIX)
    built = {
        "state": keys.state(P),
        "seen": keys.seen(P, 739890),
        "identity": keys.identity(P),
        "cooldown": keys.cooldown(P),
        "review_item": keys.review_item(N),
        "gaps": keys.gaps("g", 739890),
    }
    for name, key in built.items():
        assert family_of(key, PREFIX) is FAMILIES[name]
    with pytest.raises(ValueError, match="needs pseudonym"):
        FAMILIES["state"].key(PREFIX)


def test_every_script_is_in_the_folder_with_its_header() -> None:
    files = {path.stem for path in LUA.glob("*.lua")}
    assert files == set(scripts.NAMES)
    for name in scripts.NAMES:
        text = scripts.source(name)
        assert text.startswith("-- "), name
        assert "-- Returns" in text, name
        used = set(re.findall(r"KEYS\[(\d+)\]", text))
        declared = set(re.findall(r"^-- KEYS\[(\d+)\]", text, flags=re.M))
        assert used <= declared and declared, name


def _key_arguments(text: str) -> list[str]:
    return re.findall(r"redis\.call\('\w+',\s*([^,)]+)", text)


def test_no_script_builds_a_key_name() -> None:
    """A key reaches a script only through KEYS: the first argument of every call is KEYS
    itself or a name that is never assigned from a string concatenation."""
    for name in scripts.NAMES:
        text = scripts.source(name)
        code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        assert "prefix" not in code, name
        for argument in _key_arguments(code):
            assert ".." not in argument and "'" not in argument, (name, argument)
            variable = argument.strip().split(".")[-1]
            if variable.startswith("KEYS["):
                continue
            for assigned in re.findall(rf"\b{re.escape(variable)}\s*=\s*([^\n,]+)", code):
                assert ".." not in assigned, (name, variable, assigned)


def test_the_key_check_would_see_a_built_key() -> None:
    built = "local sk = prefix .. ':s:' .. who\nredis.call('HGET', sk, 'first')"
    (argument,) = _key_arguments(built)
    assert argument == "sk"
    assert ".." in re.findall(r"\bsk\s*=\s*([^\n,]+)", built)[0]


def test_the_documented_register_is_the_register() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "keys.md"
    assert register_table() in docs.read_text(encoding="utf-8")
