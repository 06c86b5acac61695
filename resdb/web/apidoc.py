"""OpenAPI generated from the code: `@api_doc(...)` on each /api view, walked over `app.url_map`.

To document a new endpoint (e.g. POST /api/match), register the route as usual and decorate the
view with `@api_doc(summary=..., params=[Param(...)], body=<pydantic model or JSON schema>,
responses={200: ("…", <model or schema>)})`. The route appears in /api/openapi.json by itself; a
route without `@api_doc` still appears, flagged `x-undocumented`, and the web tests fail on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel

from resdb.web.errors import STATUS_TEXT

F = TypeVar("F", bound=Callable[..., Any])
SchemaLike = type[BaseModel] | Mapping[str, Any] | None
ResponseSpec = str | tuple[str, SchemaLike] | tuple[str, SchemaLike, str]
_RULE_ARG = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>"
)
_CONVERTER_SCHEMA = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
API_PREFIX = "/api/"


@dataclass(frozen=True)
class Param:
    """One query, path or header parameter of an operation."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    location: str = "query"
    required: bool = False
    explode: bool | None = None

    def as_openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.location,
            "description": self.description,
            "required": self.required or self.location == "path",
            "schema": dict(self.schema),
        }
        if self.explode is not None:
            out["explode"] = self.explode
        return out


@dataclass(frozen=True)
class ApiDoc:
    summary: str
    description: str = ""
    params: Sequence[Param] = ()
    body: SchemaLike = None
    body_required: bool = True
    responses: Mapping[int, ResponseSpec] = field(default_factory=dict)
    tags: Sequence[str] = ()
    auth: bool = False


def api_doc(
    summary: str,
    *,
    description: str = "",
    params: Sequence[Param] = (),
    body: SchemaLike = None,
    body_required: bool = True,
    responses: Mapping[int, ResponseSpec] | None = None,
    tags: Sequence[str] = (),
    auth: bool = False,
) -> Callable[[F], F]:
    """Record the OpenAPI description of a view function (read by `openapi_spec`)."""

    def decorate(view: F) -> F:
        doc = ApiDoc(
            summary,
            description,
            tuple(params),
            body,
            body_required,
            dict(responses or {}),
            tuple(tags),
            auth,
        )
        view.__api_doc__ = doc  # type: ignore[attr-defined]  # a function attribute, read by doc_of
        return view

    return decorate


def doc_of(view: Callable[..., Any]) -> ApiDoc | None:
    return getattr(view, "__api_doc__", None)


class _Components:
    """Collects pydantic model schemas under components/schemas."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, schema: SchemaLike) -> dict[str, Any] | None:
        if schema is None:
            return None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            name = schema.__name__
            if name not in self.schemas:
                generated = schema.model_json_schema(
                    ref_template="#/components/schemas/{model}", mode="serialization"
                )
                for def_name, definition in generated.pop("$defs", {}).items():
                    self.schemas.setdefault(def_name, definition)
                self.schemas[name] = generated
            return {"$ref": f"#/components/schemas/{name}"}
        return dict(schema)


def openapi_path(rule: str) -> tuple[str, list[Param]]:
    """`/api/resources/<id>` → `/api/resources/{id}` and its path parameters."""
    params: list[Param] = []

    def replace(match: re.Match[str]) -> str:
        schema = _CONVERTER_SCHEMA.get(match.group("converter") or "", {"type": "string"})
        params.append(Param(match.group("name"), match.group("name"), schema, "path", True))
        return "{" + match.group("name") + "}"

    return _RULE_ARG.sub(replace, rule), params


def _error_schema() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Error"}


def _response(components: _Components, status: int, spec: ResponseSpec | None) -> dict[str, Any]:
    content_type = "application/json"
    schema: SchemaLike = None
    if spec is None:
        description = STATUS_TEXT.get(status, ("OK", ""))[0] if status >= 400 else "OK"
    elif isinstance(spec, str):
        description = spec
    elif len(spec) == 2:
        description, schema = spec
    else:
        description, schema, content_type = spec
    out: dict[str, Any] = {"description": description}
    ref = (
        components.ref(schema)
        if schema is not None
        else (_error_schema() if status >= 400 else None)
    )
    if ref is not None:
        out["content"] = {content_type: {"schema": ref}}
    return out


def openapi_spec(app: Flask, *, title: str = "resdb API", version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every /api rule registered on `app`."""
    from resdb.web.schemas import ErrorResponse

    components = _Components()
    components.ref(ErrorResponse)
    components.schemas["Error"] = components.schemas.pop("ErrorResponse")
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if not rule.rule.startswith(API_PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        doc = doc_of(view)
        path, path_params = openapi_path(rule.rule)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            operation: dict[str, Any] = {
                "operationId": rule.endpoint.replace(".", "_")
                + ("" if len(methods) == 1 else f"_{method.lower()}"),
            }
            if doc is None:
                operation.update(summary=rule.endpoint, responses={"200": {"description": "OK"}})
                operation["x-undocumented"] = True
                paths.setdefault(path, {})[method.lower()] = operation
                continue
            operation["summary"] = doc.summary
            if doc.description:
                operation["description"] = doc.description
            if doc.tags:
                operation["tags"] = list(doc.tags)
            documented = {p.name for p in doc.params if p.location == "path"}
            parameters = [p.as_openapi() for p in path_params if p.name not in documented]
            parameters += [p.as_openapi() for p in doc.params]
            if parameters:
                operation["parameters"] = parameters
            if doc.body is not None and method in {"POST", "PUT", "PATCH"}:
                operation["requestBody"] = {
                    "required": doc.body_required,
                    "content": {"application/json": {"schema": components.ref(doc.body)}},
                }
            responses: dict[int, ResponseSpec | None] = dict(doc.responses)
            if doc.auth:
                operation["security"] = [{"bearerAuth": []}]
                responses.setdefault(401, "API トークンがない、または無効")
                responses.setdefault(403, "この役割・担当範囲では操作できない")
            if getattr(view, "__rate_limited__", False):
                responses.setdefault(429, "アクセスが集中している（Retry-After 秒後に再試行）")
            if not any(200 <= status < 300 for status in responses):
                responses[200] = "OK"
            operation["responses"] = {
                str(status): _response(components, status, spec)
                for status, spec in sorted(responses.items())
            }
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "地域の社会資源ディレクトリ（居場所・通いの場・相談窓口など）の検索・編集 API。"
            'エラーは {"error": {"code", "message", "problems"}} の形で返ります。',
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`resdb token create EMAIL` で発行した API トークン",
                }
            },
        },
    }
