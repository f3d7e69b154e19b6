"""The API's one-key read of a student (HGETALL) gives what the worker's read of chosen days
(HMGET) gives, on any state hash the worker could have written, in a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.store.dayfacts import COUNTED
from agents.store.state import EngagementStore
from stream.endpoints import Endpoints

pytestmark = pytest.mark.integration

FIRST, LAST = 740_000, 740_006  # the days asked for; fields fall around and outside them
days = st.integers(FIRST - 3, LAST + 3)
count = st.integers(0, 500).map(str)
marks = st.tuples(*[st.integers(0, 4)] * 4).map(lambda m: ",".join(map(str, m))) | st.just("")
fields = st.dictionaries(
    st.one_of(
        days.map(lambda d: f"a:{d}"),
        st.tuples(days, st.sampled_from([*COUNTED, "attendance", "unknownfeed"])).map(
            lambda ds: f"d:{ds[0]}:{ds[1]}"
        ),
        st.sampled_from(["ls:vle", "sg", "ac"]),
    ),
    st.one_of(count, marks),
    max_size=60,
)


def _fix(raw: dict[str, str]) -> dict[str, str]:
    """Values as the worker writes them: marks in ``a:`` fields, integers in counts, a
    correction list the parser takes in ``ac``."""
    out = {}
    for key, value in raw.items():
        if key.startswith("a:"):
            out[key] = value if value == "" or "," in value else f"{value},0,0,0"
        elif key == "ac":
            out[key] = ""
        else:
            out[key] = value.split(",")[0] or "0"
    return out


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=fields, has_first=st.booleans())
def test_one_student_read_whole_equals_the_days_read_by_name(
    stack: Endpoints, prefix: str, raw: dict[str, str], has_first: bool
) -> None:
    async def both() -> tuple[object, object]:
        client = aioredis.Redis.from_url(stack.redis_url)
        store = EngagementStore(client, prefix=prefix, group="g", dedup_ttl_s=60, state_ttl_s=60)
        key = store.student_key("p1")
        try:
            await client.delete(key)
            mapping = _fix(raw) | ({"first": "1700000000000"} if has_first else {})
            if mapping:
                await client.hset(key, mapping=mapping)
            many = await store.load_students(["p1"], FIRST, LAST)
            one = await store.load_student("p1", FIRST, LAST)
            return (many[0] if many else None), one
        finally:
            await client.delete(key)
            await client.aclose()

    many, one = asyncio.run(both())
    assert one == many
