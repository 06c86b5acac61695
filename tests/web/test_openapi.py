"""/api/openapi.json is generated from the code: every /api rule appears, documented, with its schemas."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel

from resdb.web.apidoc import Param, api_doc, openapi_path, openapi_spec


def _api_operations(app: Any) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path, _ = openapi_path(rule.rule)
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                found.add((path, method.lower()))
    return found


def test_every_api_rule_is_in_the_document(client: Any, demo_app: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert _api_operations(demo_app) <= documented
    for path, ops in spec["paths"].items():
        for method, operation in ops.items():
            assert not operation.get("x-undocumented"), f"{method.upper()} {path} has no @api_doc"
            assert operation["summary"] and operation["responses"]


def test_contract_endpoints_and_parameters(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    paths = spec["paths"]
    for path, method in [
        ("/api/resources", "get"),
        ("/api/resources", "post"),
        ("/api/resources/{listing_id}", "get"),
        ("/api/resources/{listing_id}", "put"),
        ("/api/resources/{listing_id}", "delete"),
        ("/api/resources.geojson", "get"),
        ("/api/areas/lookup", "get"),
        ("/api/openapi.json", "get"),
    ]:
        assert method in paths[path], (path, method)
    search = {p["name"] for p in paths["/api/resources"]["get"]["parameters"]}
    assert {
        "q",
        "kind",
        "target",
        "weekday",
        "open",
        "free",
        "barrier_free",
        "pickup",
        "lat",
        "lon",
        "radius_km",
        "bbox",
        "limit",
        "offset",
    } <= search
    post = paths["/api/resources"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert {"201", "401", "403", "422"} <= set(post["responses"])
    assert "412" in paths["/api/resources/{listing_id}"]["put"]["responses"]
    assert "429" in paths["/api/resources"]["get"]["responses"]
    schemas = spec["components"]["schemas"]
    assert {"Listing", "ListingCreate", "SearchResult", "Error", "FeatureCollection"} <= set(
        schemas
    )
    assert "kind" in schemas["Listing"]["properties"]
    assert schemas["ListingCreate"]["required"] == ["name", "kind"]
    ref = paths["/api/resources"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert ref == {"$ref": "#/components/schemas/SearchResult"}


def test_a_new_route_documents_itself(demo_directory: Any) -> None:
    """How a new endpoint joins: a decorated view on any blueprint shows up without touching the generator."""
    from resdb.web import create_app

    class Suggestion(BaseModel):
        age: int

    extra = Blueprint("extra", __name__, url_prefix="/api")

    @extra.post("/suggest")
    @api_doc(
        "人に合う場所を提案する",
        body=Suggestion,
        params=[Param("limit", "件数", {"type": "integer"})],
        responses={200: ("提案", {"type": "object"})},
    )
    def suggest() -> Any:
        return jsonify({})

    @extra.get("/undocumented")
    def undocumented() -> Any:
        return jsonify({})

    app = create_app({"DIRECTORY": demo_directory, "SECRET_KEY": "x"})
    app.register_blueprint(extra)
    spec = openapi_spec(app)
    operation = spec["paths"]["/api/suggest"]["post"]
    assert operation["summary"] == "人に合う場所を提案する"
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Suggestion"
    }
    assert "Suggestion" in spec["components"]["schemas"]
    assert spec["paths"]["/api/undocumented"]["get"]["x-undocumented"] is True
