"""The OpenAPI document is the contract: every route, parameter, field and error documented, with examples.

These tests read the live document from a running ``engage serve``, so they fail naming whatever a
new route or field leaves undocumented.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

Doc = dict[str, Any]
#: A made-up number: North American 555-0100..0199 are reserved for fiction.
_FICTIONAL_PHONE = re.compile(r"555[\s.-]?01\d\d")
_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
#: RFC 2606 names: example.com/.org/.net and anything under .example.
_RESERVED_DOMAIN = re.compile(r"(.+\.)?example\.(com|org|net)|.+\.example")


@pytest.fixture(scope="module")
def doc(server: str) -> Doc:
    answer = httpx.get(server + "/api/openapi.json", timeout=30)
    assert answer.status_code == 200
    return dict(answer.json())


def _has_example(schema: Doc) -> bool:
    if "example" in schema or "examples" in schema:
        return True
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    return bool(branches) and all(_has_example(b) for b in branches)


def _refers(schema: Doc) -> bool:
    """A property holding other documented schemas: their own properties carry the examples."""
    inner = [schema, schema.get("items", {}), *schema.get("anyOf", []), *schema.get("allOf", [])]
    return any("$ref" in part or "$ref" in part.get("items", {}) for part in inner)


def _operations(doc: Doc) -> list[tuple[str, Doc]]:
    return [(f"{method.upper()} {path}", op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_every_schema_property_has_a_description_and_an_example(doc: Doc) -> None:
    missing = []
    for name, schema in doc["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{prop}: no description")
            if not _has_example(spec) and not _refers(spec):
                missing.append(f"{name}.{prop}: no example")
    assert missing == []


def test_every_route_and_parameter_is_described_with_an_example(doc: Doc) -> None:
    missing = []
    for route, op in _operations(doc):
        if not op.get("summary") or not op.get("description"):
            missing.append(f"{route}: no summary or description")
        for param in op.get("parameters", []):
            where = f"{route} {param['in']} parameter {param['name']}"
            if not param.get("description"):
                missing.append(f"{where}: no description")
            if not (_has_example(param) or _has_example(param.get("schema", {}))):
                missing.append(f"{where}: no example")
        for media, body in op.get("requestBody", {}).get("content", {}).items():
            if not (_has_example(body) or "$ref" in body.get("schema", {}) or _has_example(body.get("schema", {}))):
                missing.append(f"{route} {media} body: no example")
    assert missing == []


def test_every_error_answer_is_documented_as_a_problem_with_an_example(doc: Doc) -> None:
    missing = []
    for route, op in _operations(doc):
        codes = set(op["responses"])
        needed = {"401", "422"} | ({"403"} if route.split()[0] in ("POST", "PUT", "PATCH") else set())
        if "requestBody" in op:
            needed.add("413")
        if "{" in route and "by-external-id" not in route:
            needed.add("404")
        missing += [f"{route}: {code} not documented" for code in sorted(needed - codes)]
        for code in sorted(c for c in codes if c.startswith(("4", "5"))):
            answer = op["responses"][code]
            example = answer.get("content", {}).get("application/problem+json", {}).get("example")
            if not answer.get("description") or not example or str(example.get("status")) != code:
                missing.append(f"{route}: {code} has no problem+json example of its own")
    assert missing == []


def test_examples_hold_no_real_looking_contact_details(doc: Doc) -> None:
    def strings(node: Any, key: str = "") -> list[tuple[str, str]]:
        if isinstance(node, dict):
            return [s for k, v in node.items() for s in strings(v, k if k in ("example", "examples") else key)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v, key)]
        return [(key, node)] if isinstance(node, str) and key else []

    examples = [text for _, text in strings(doc)]
    undated = [re.sub(r"\d{4}-\d\d-\d\d(T[\d:.]+([+-]\d\d:\d\d|Z)?)?", " ", t) for t in examples]
    phones = [m.group() for t in undated for m in _PHONE_LIKE.finditer(t)]
    assert len(phones) >= 3, "the document shows phone numbers (patients, the CSV and FHIR examples)"
    assert [p for p in phones if not _FICTIONAL_PHONE.search(p)] == []
    emails = [m for t in examples for m in re.findall(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", t)]
    assert emails and [d for d in emails if not _RESERVED_DOMAIN.fullmatch(d)] == []


def test_the_docs_page_loads_swagger_ui_from_engage_itself(server: str) -> None:
    page = httpx.get(server + "/api/docs", timeout=30)
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)

    assert page.status_code == 200 and "/api/openapi.json" in page.text
    # Swagger UI's two, its start and engage's readable colours (api-docs.css)
    assert sorted(a.rsplit(".", 1)[-1] for a in assets) == ["css", "css", "js", "js"]
    for asset in assets:
        assert asset.startswith(("/api/assets/", "/static/")), f"{asset}: the page must work offline, without a CDN"
        assert httpx.get(server + asset, timeout=30).status_code == 200
    # ... and it keeps a strict CSP: no inline script, never framed
    assert "<script>" not in page.text
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy and "unsafe-inline" not in policy
