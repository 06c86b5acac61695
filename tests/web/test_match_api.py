"""POST /api/match, /api/match/batch and /api/gaps: contract shapes, clear 400s, nothing cached or kept."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from resdb.domain.shipped import PERSONS_DIR

PERSONS = PERSONS_DIR


def _person(name: str) -> dict:
    return json.loads((PERSONS / f"{name}.json").read_text(encoding="utf-8"))


def test_match_returns_contract_shape(client: FlaskClient) -> None:
    response = client.post("/api/match?limit=5", json=_person("hikikomori_youth"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert (
        set(body) == {"proposals", "excluded", "near_misses", "fit_counts"}
        and 0 < len(body["proposals"]) <= 5
    )
    fits = [p["fit"] for p in body["proposals"]]
    assert fits == sorted(fits, key=lambda f: f != "known")  # known to fit first, then 要確認の候補
    assert body["fit_counts"]["known"] == fits.count("known")
    first = body["proposals"][0]
    assert {
        "resource_id",
        "name",
        "score",
        "travel_minutes",
        "next_sessions",
        "reasons",
        "cautions",
    } <= set(first)
    assert all({"factor", "score", "text"} <= set(r) for r in first["reasons"])


def test_match_lists_every_exclusion_on_request(client: FlaskClient) -> None:
    person = _person("hikikomori_youth")
    few = client.post("/api/match?limit=3", json=person).get_json()["excluded"]
    every = client.post("/api/match?limit=3&excluded=all", json=person).get_json()["excluded"]
    assert len(few) <= 3 < len(every)
    assert client.post("/api/match?excluded=some", json=person).status_code == 400


def test_match_by_address(client: FlaskClient) -> None:
    response = client.post(
        "/api/match", json={"home": {"address": "富山県射水市戸破4200番地11"}, "goals": ["friends"]}
    )
    assert response.status_code == 200 and response.get_json()["proposals"]


def test_match_errors_are_clear(client: FlaskClient) -> None:
    assert client.post("/api/match", data="x", content_type="text/plain").status_code == 400
    bad = client.post(
        "/api/match", json={"home": {"lat": 36.7, "lon": 137.1}, "mobility": "rocket"}
    )
    assert bad.status_code == 400 and "mobility" in bad.get_json()["error"]["message"]
    assert client.post("/api/match?limit=999", json=_person("hikikomori_youth")).status_code == 400


def test_batch_and_gaps(client: FlaskClient) -> None:
    persons = json.loads((PERSONS / "caseload.json").read_text(encoding="utf-8"))
    persons = persons["persons"] if isinstance(persons, dict) else persons
    body = client.post("/api/match/batch", json={"persons": persons}).get_json()
    assert len(body["assignments"]) + len(body["unassigned"]) == len(persons)
    assert client.post("/api/match/batch", json=persons).status_code == 400
    gaps = client.post(
        "/api/gaps",
        json={
            "needs": [
                {
                    "goal": "work",
                    "targets": ["hikikomori"],
                    "district": "大島地区",
                    "mobility": "walk",
                    "max_minutes": 10,
                }
            ]
        },
    )
    assert gaps.status_code == 200


def test_match_routes_are_in_openapi(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert {"/api/match", "/api/match/batch", "/api/gaps"} <= set(paths)
    assert "x-undocumented" not in json.dumps(paths["/api/match"])
