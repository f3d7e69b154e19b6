"""The API's OpenAPI document is checked in (docs/api.openapi.json) and matches the code."""

from __future__ import annotations

import json
from pathlib import Path

from stream.api.app import openapi_document, openapi_text

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "api.openapi.json"


def test_the_checked_in_document_is_the_one_the_api_serves() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == openapi_text(), (
        "docs/api.openapi.json is stale: run `engagement api --openapi > docs/api.openapi.json`"
    )


def test_every_route_under_v1_answers_refusals_as_problem_details() -> None:
    document = openapi_document()
    paths = document["paths"]
    assert "/v1/me" in paths and "/v1/students/{student_id}" in paths
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for status in ("400", "401", "403"):
                content = operation["responses"][status]["content"]
                assert "application/problem+json" in content, (path, method, status)
    assert "/healthz" not in paths  # operational endpoints stay out of the product's API
    json.dumps(document)
