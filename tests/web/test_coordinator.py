"""The coordinator desk end to end: match a persona (POST), proposals with reasons and next dates, the print
sheet, saving a case with its legal basis, stages and follow-up, caseload, indicators, 403 for others,
caseload placement within capacity, the gap report and its CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest

from resdb.domain.shipped import PERSONS_DIR
from tests.web.conftest import StaffSetup, csrf_of

PERSONS = PERSONS_DIR
_CASE_URL = re.compile(r"/coordinator/cases/(\d+)\?done=saved$")


def persona(name: str) -> dict[str, Any]:
    return json.loads((PERSONS / f"{name}.json").read_text(encoding="utf-8"))


def form_of(person: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The matching form as a browser would post it (checkboxes as lists, one row per time slot)."""
    home = person.get("home") or {}
    data: dict[str, Any] = {
        "goals": list(person.get("goals") or []),
        "targets": list(person.get("targets") or []),
        "interests": "、".join(person.get("interests") or []),
        "mobility": person.get("mobility") or "",
        "max_minutes": str(person.get("max_minutes") or ""),
        "age": str(person.get("age") or ""),
        "budget_yen": "" if person.get("budget_yen") is None else str(person["budget_yen"]),
        "home_district": home.get("district") or "",
        "home_lat": "" if home.get("lat") is None else str(home["lat"]),
        "home_lon": "" if home.get("lon") is None else str(home["lon"]),
        "group_size": (person.get("prefers") or {}).get("group_size") or "",
    }
    if (person.get("needs") or {}).get("barrier_free"):
        data["need_barrier_free"] = "1"
    if (person.get("needs") or {}).get("pickup"):
        data["need_pickup"] = "1"
    for i, slot in enumerate(person.get("available") or []):
        data.update(
            {
                f"avail_weekday_{i}": slot["weekday"],
                f"avail_start_{i}": slot["start"],
                f"avail_end_{i}": slot["end"],
            }
        )
    data.update(extra)
    return data


_PRG_PATHS = {"/coordinator/match", "/coordinator/match/sheet", "/coordinator/match/compare"}
_RESULT_URL = re.compile(r"^/coordinator/r/[A-Za-z0-9_-]{43}$")


def post_form(
    client: Any, path: str, data: dict[str, Any], csrf_path: str = "/coordinator/match"
) -> Any:
    """POST like the browser; the matching answers redirect (303) to a stored result, which is then fetched."""
    response = client.post(path, data={**data, "csrf_token": csrf_of(client, csrf_path)})
    if path in _PRG_PATHS and response.status_code == 303:
        location = response.headers["Location"]
        assert _RESULT_URL.match(location), location
        response = client.get(location)
    return response


def save_case(
    client: Any, person: dict[str, Any], pseudonym: str, picks: list[str], basis: str = "consent"
) -> int:
    response = post_form(
        client,
        "/coordinator/match/save",
        form_of(
            person, pseudonym=pseudonym, legal_basis=basis, notes="見学は家族と一緒に", pick=picks
        ),
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    match = _CASE_URL.search(response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def test_pages_need_a_coordinator(staff: StaffSetup) -> None:
    anonymous = staff.client()
    assert anonymous.get("/coordinator/match").status_code == 302
    editor = staff.login("imizu@example.jp")
    for path in (
        "/coordinator/",
        "/coordinator/match",
        "/coordinator/batch",
        "/coordinator/gaps",
        "/coordinator/indicators",
    ):
        assert editor.get(path).status_code == 403, path
    coord = staff.login("coord@example.jp")
    for path in (
        "/coordinator/",
        "/coordinator/match",
        "/coordinator/batch",
        "/coordinator/gaps",
        "/coordinator/indicators",
    ):
        assert coord.get(path).status_code == 200, path


def test_match_form_is_a_post_form_with_labels(staff: StaffSetup) -> None:
    html = staff.login("coord@example.jp").get("/coordinator/match").get_data(as_text=True)
    assert 'method="post"' in html and 'action="/coordinator/match"' in html
    for label in (
        "外に出る一歩",
        "仲間・交流",
        "健康・介護予防",
        "バリアフリーが必要",
        "送迎が必要",
        "自転車",
        "少人数",
    ):
        assert label in html
    assert (
        staff.login("coord@example.jp").get("/coordinator/match?interests=x").status_code == 200
    )  # GET never matches


def test_full_flow(staff: StaffSetup) -> None:
    coord = staff.login("coord@example.jp")
    elder = persona("8050_elder")

    # 1. match (POST): proposals with reasons, travel and next date; near misses with their rule
    response = post_form(coord, "/coordinator/match", form_of(elder))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "戸破ふれあいサロン" in html
    assert "徒歩で約1分" in html
    assert "次回 12月2日" in html
    assert "仲間づくりに向く通いの場" in html
    assert (
        "惜しくも外れた場所" in html and "すてっぴカフェ" in html and "対象者が合いません" in html
    )
    assert 'id="desk-config"' in html and '"points"' in html  # the map's data
    assert 'name="home_lat" value="36.7236"' in html  # hidden fields carry the person back

    # 2. the print sheet: plain words, schedule + next dates, access, cost, contact; no scores
    sheet = post_form(coord, "/coordinator/match/sheet", form_of(elder, pick=["t-salon"]))
    assert sheet.status_code == 200 and sheet.headers["Cache-Control"] == "no-store"
    text = sheet.get_data(as_text=True)
    assert "あなたに合いそうな場所のご案内" in text
    for expected in (
        "戸破ふれあいサロン",
        "毎月第1・第3水曜",
        "12月2日（水）13:30",
        "徒歩で約1分",
        "100円",
        "戸破地区社協",
    ):
        assert expected in text, expected
    assert "0.776" not in text and "score" not in text.lower()

    # 3. compare two places side by side
    compared = post_form(coord, "/coordinator/match/compare", form_of(elder, pick=["t-salon"]))
    assert compared.status_code == 200 and "2〜3か所選んでください" in compared.get_data(
        as_text=True
    )

    # 4. saving needs a pseudonym and a legal basis
    refused = post_form(
        coord, "/coordinator/match/save", form_of(elder, pseudonym="", pick=["t-salon"])
    )
    assert refused.status_code == 422
    assert "本人同意 または 支援会議" in refused.get_data(as_text=True)
    case_id = save_case(coord, elder, "Aさん", ["t-salon"])

    page = coord.get(f"/coordinator/cases/{case_id}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert (
        "Aさん" in html and "本人同意" in html and "戸破ふれあいサロン" in html and "提案" in html
    )
    assert "見学は家族と一緒に" in html and "82歳" in html
    placement = int(re.search(r'id="placement-(\d+)"', html).group(1))

    # 5. stages 見学 → 参加中, a follow-up with the next date, a host-support note
    base = f"/coordinator/cases/{case_id}/placements/{placement}"
    case_path = f"/coordinator/cases/{case_id}"
    for stage in ("visited", "participating"):
        done = post_form(coord, base, {"kind": "stage", "to_stage": stage}, case_path)
        assert done.status_code == 303
    assert (
        post_form(
            coord,
            base,
            {"kind": "follow_up", "note": "楽しく通えている", "next_follow_up": "2026-11-20"},
            case_path,
        ).status_code
        == 303
    )
    assert (
        post_form(
            coord, base, {"kind": "host_support", "note": "世話役さんと面談"}, case_path
        ).status_code
        == 303
    )
    html = coord.get(case_path).get_data(as_text=True)
    assert 'aria-current="step">参加中' in html
    assert "楽しく通えている" in html and "世話役さんと面談" in html and "2026年11月20日" in html

    # 6. caseload: stage and the overdue follow-up highlighted
    home = coord.get("/coordinator/").get_data(as_text=True)
    assert (
        "Aさん" in home
        and "参加中" in home
        and "予定を過ぎています" in home
        and "is-overdue" in home
    )

    # 7. indicators for this fiscal year (the case was made now) and the CSV
    from datetime import date

    today = date.today()
    year = today.year if today.month >= 4 else today.year - 1
    html = coord.get(f"/coordinator/indicators?year={year}").get_data(as_text=True)
    row = re.search(
        rf"<th scope=\"row\">{year}年度</th><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", html
    )
    assert row and row.groups() == ("1", "1", "1"), html[-2000:]
    assert f"{year - 1}年度" in html
    csv_response = coord.get(f"/coordinator/indicators.csv?year={year}")
    body = csv_response.get_data()
    assert body.startswith("\ufeff".encode()) and csv_response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][1] == "参加支援のプラン作成件数" and rows[1] == [
        f"{year}年度",
        "1",
        "1",
        "1",
        "0",
        "0",
    ]
    assert rows[0][4:] == ["協力企業・団体数", "相談依頼シート件数"]

    # 8. another coordinator: 403 on the case and its placements; not in their caseload; admin may see
    other = staff.login("coord2@example.jp")
    assert other.get(case_path).status_code == 403
    assert (
        post_form(
            other, base, {"kind": "stage", "to_stage": "stopped"}, "/coordinator/"
        ).status_code
        == 403
    )
    assert "Aさん" not in other.get("/coordinator/").get_data(as_text=True)
    assert staff.login("admin@example.jp").get(case_path).status_code == 200

    # every view is audited
    from resdb.workspace import audit_entries

    views = [
        e
        for e in audit_entries(staff.directory.engine, target_type="case", target_id=str(case_id))
        if e["action"] == "case.view"
    ]
    assert len(views) >= 3


def test_bad_person_is_explained_in_japanese(staff: StaffSetup) -> None:
    coord = staff.login("coord@example.jp")
    response = post_form(
        coord,
        "/coordinator/match",
        {
            "goals": ["friends"],
            "avail_weekday_0": "tue",
            "avail_start_0": "12:00",
            "avail_end_0": "09:00",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert (
        "自宅: 住所・地区・緯度経度のどれかを入れてください" in html
        and "都合のよい時間 1 行目" in html
    )
    unknown = post_form(coord, "/coordinator/match", {"home_district": "存在しない町"})
    assert unknown.status_code == 422 and "自宅の地区" in unknown.get_data(as_text=True)


def test_add_another_place(staff: StaffSetup) -> None:
    coord = staff.login("coord@example.jp")
    youth = {
        "home": {"lat": 36.7215, "lon": 137.0975},
        "age": 24,
        "mobility": "walk",
        "max_minutes": 30,
        "goals": ["first_step"],
        "targets": ["hikikomori"],
    }
    case_id = save_case(coord, youth, "Bさん", [], basis="support_meeting")
    html = coord.get(f"/coordinator/cases/{case_id}").get_data(as_text=True)
    assert "支援会議" in html and 'value="t-cafe"' in html
    added = post_form(
        coord,
        f"/coordinator/cases/{case_id}/places",
        {"listing_id": "t-cafe"},
        f"/coordinator/cases/{case_id}",
    )
    assert added.status_code == 303
    assert "すてっぴカフェ" in coord.get(f"/coordinator/cases/{case_id}").get_data(as_text=True)
    assert "提案" in coord.get("/coordinator/").get_data(as_text=True)


def test_batch_respects_capacity(staff: StaffSetup) -> None:
    staff.directory.create(
        {
            "id": "t-cap",
            "name": "作業体験ひろば",
            "kind": "work_trial",
            "lat": 36.7230,
            "lon": 137.0985,
            "municipality_code": "162116",
            "targets": ["disability"],
            "capacity": 1,
            "cost_yen": 0,
            "schedule": [{"weekday": "thu", "start": "10:00", "end": "12:00"}],
        },
        actor="fixture",
    )
    coord = staff.login("coord@example.jp")
    person = {
        "home": {"lat": 36.7236, "lon": 137.0991},
        "age": 45,
        "mobility": "walk",
        "max_minutes": 30,
        "goals": ["work"],
        "targets": ["disability"],
        "available": [{"weekday": "thu", "start": "09:00", "end": "13:00"}],
    }
    first = save_case(coord, person, "Cさん", [])
    second = save_case(coord, person, "Dさん", [])
    page = coord.get("/coordinator/batch").get_data(as_text=True)
    assert "Cさん" in page and "Dさん" in page
    response = post_form(
        coord, "/coordinator/batch", {"case": [str(first), str(second)]}, "/coordinator/batch"
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assigned = re.findall(r'name="assign" value="(\d+):t-cap:', html)
    assert len(assigned) == 1  # capacity 1: one person only
    assert 'id="unassigned"' in html
    unassigned = html.split('id="unassigned"')[1]
    assert ("Cさん" in unassigned) != ("Dさん" in unassigned)
    value = re.search(r'name="assign" value="([^"]+)"', html).group(1)
    applied = post_form(
        coord, "/coordinator/batch/apply", {"assign": [value]}, "/coordinator/batch"
    )
    assert applied.status_code == 303
    case_html = coord.get(f"/coordinator/cases/{assigned[0]}").get_data(as_text=True)
    assert "作業体験ひろば" in case_html
    # nothing chosen: explained
    assert post_form(coord, "/coordinator/batch", {}, "/coordinator/batch").status_code == 422
    # someone else's case cannot be added to
    other = staff.login("coord2@example.jp")
    assert (
        post_form(
            other, "/coordinator/batch/apply", {"assign": [value]}, "/coordinator/batch"
        ).status_code
        == 403
    )


GAPS_CSV = "地区,目的,対象,移動手段,件数\n戸破,仲間・交流,高齢者,徒歩,3\n大門,働きたい,障がいのある人,徒歩,2\n"


def test_gaps_page_map_and_csv(staff: StaffSetup) -> None:
    coord = staff.login("coord@example.jp")
    response = post_form(coord, "/coordinator/gaps", {"needs_text": GAPS_CSV}, "/coordinator/gaps")
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    html = response.get_data(as_text=True)
    assert 'id="unmet"' in html
    unmet = html.split('id="unmet"')[1].split("</table>")[0]
    assert (
        "大門" in unmet and "戸破" not in unmet
    )  # 戸破 has a salon for elderly within walking distance
    config = json.loads(
        re.search(
            r'<script type="application/json" id="desk-config">(.*?)</script>', html, re.S
        ).group(1)
    )
    features = config["districts"]["features"]
    assert len(features) == 27 and all(f["properties"]["approximate"] for f in features)
    by_name = {f["properties"]["name"]: f["properties"] for f in features}
    assert (
        by_name["大門地区"]["unmet"] == 2
        and by_name["戸破地区"]["unmet"] == 0
        and by_name["戸破地区"]["needs"] == 3
    )
    assert "近似" in html

    needs_json = re.search(r'name="needs_json" value="([^"]*)"', html).group(1)
    import html as html_mod

    download = post_form(
        coord,
        "/coordinator/gaps.csv",
        {"needs_json": html_mod.unescape(needs_json)},
        "/coordinator/gaps",
    )
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.get_data().startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(download.get_data().decode("utf-8-sig"))))
    assert rows[0] == [
        "地区",
        "目的",
        "対象",
        "移動手段",
        "件数",
        "利用可能な場",
        "空き定員",
        "不足",
        "主な理由",
    ]
    assert ["大門", "働きたい", "障がいのある人", "徒歩", "2"] == rows[1][:5] and rows[1][5] == "0"

    # upload as a Shift_JIS file, and JSON
    upload = coord.post(
        "/coordinator/gaps",
        data={
            "csrf_token": csrf_of(coord, "/coordinator/gaps"),
            "needs_file": (io.BytesIO(GAPS_CSV.encode("cp932")), "needs.csv"),
        },
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200 and 'id="unmet"' in upload.get_data(as_text=True)
    as_json = json.dumps(
        [
            {
                "district": "戸破",
                "goal": "friends",
                "targets": ["elderly"],
                "mobility": "walk",
                "count": 1,
            }
        ]
    )
    assert (
        post_form(
            coord, "/coordinator/gaps", {"needs_text": as_json}, "/coordinator/gaps"
        ).status_code
        == 200
    )
    bad = post_form(
        coord,
        "/coordinator/gaps",
        {"needs_text": "地区,目的\n戸破,宇宙旅行\n"},
        "/coordinator/gaps",
    )
    assert bad.status_code == 422 and "2行目 目的" in bad.get_data(as_text=True)


def test_gaps_from_saved_cases_are_anonymous(staff: StaffSetup) -> None:
    coord = staff.login("coord@example.jp")
    save_case(coord, persona("8050_elder"), "Eさん", [])
    response = post_form(coord, "/coordinator/gaps", {"source": "cases"}, "/coordinator/gaps")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    needs = json.loads(
        __import__("html").unescape(re.search(r'name="needs_json" value="([^"]*)"', html).group(1))
    )
    assert needs == [
        {
            "district": "戸破地区",
            "goal": "health",
            "targets": ["elderly"],
            "mobility": "walk",
            "count": 1,
        }
    ]
    assert "Eさん" not in html and "体操" not in html


@pytest.mark.parametrize("name", ["hikikomori_youth", "new_parent", "elder_no_car"])
def test_demo_personas_match_on_the_demo(demo_directory: Any, name: str) -> None:
    """Every persona form works against the full demo (read-only: nothing is saved)."""
    from resdb import accounts
    from resdb.web import create_app
    from tests.web.conftest import FIXED_TODAY

    app = create_app(
        {
            "DIRECTORY": demo_directory,
            "TESTING": True,
            "RATE_LIMIT": None,
            "SECRET_KEY": "t",
            "TODAY": lambda: FIXED_TODAY,
        }
    )
    with app.test_request_context():
        from resdb.web.coordinator import person_from_values, values_from_person

        person, problems = person_from_values(values_from_person(persona(name)))
    assert not problems
    del accounts
    answer = app.extensions.get("resdb.matching") or __import__(
        "resdb.matching", fromlist=["Matching"]
    ).Matching(demo_directory)
    result = answer.match(person, today=FIXED_TODAY)
    assert result["proposals"], name
