"""わたしの地域 by residents' questions: the first place to call, then the windows grouped by life topic."""

from __future__ import annotations

import re
from typing import Any

from resdb.web.labels import describe_schedule, tel_href

# Life topics in the order residents ask about them: (key, heading, the targets and words that put a window there).
TOPICS: tuple[tuple[str, str, frozenset[str], tuple[str, ...]], ...] = (
    ("elderly", "高齢・介護", frozenset({"elderly"}), ("地域包括", "介護", "高齢")),
    ("disability", "障がい", frozenset({"disability"}), ("障がい", "障害")),
    (
        "children",
        "子ども・子育て",
        frozenset({"children", "parents"}),
        ("子育て", "子ども", "こども", "母子", "保育"),
    ),
    ("money", "暮らし・お金", frozenset({"poverty"}), ("生活困窮", "家計", "暮らし", "生活保護")),
    (
        "hikikomori",
        "ひきこもり・生きづらさ",
        frozenset({"hikikomori", "youth"}),
        ("ひきこもり", "生きづらさ", "不登校"),
    ),
)
_FIRST_WORDS = ("地域包括支援センター", "総合相談")
_SENTENCE = re.compile(r"^(.+?[。．])")


def handles(item: dict[str, Any]) -> str:
    """One line on what a window handles: its activities, or the first sentence of its description."""
    activities = [a for a in item.get("activities") or [] if a]
    if activities:
        return "・".join(activities)
    text = (item.get("description") or "").strip()
    match = _SENTENCE.match(text)
    line = match.group(1) if match else text
    return line if len(line) <= 80 else line[:79] + "…"


def hours(item: dict[str, Any]) -> str | None:
    """Opening hours in words when the listing has them (None: not listed)."""
    return describe_schedule(item.get("schedule")) or None


def _covers_whole_municipality(item: dict[str, Any], municipality_name: str | None) -> bool:
    districts = (item.get("service_area") or {}).get("districts") or []
    if not districts:
        return True
    if not municipality_name:
        return False
    return any(municipality_name.endswith(d) or d.endswith(municipality_name) for d in districts)


def _topics_of(item: dict[str, Any]) -> list[str]:
    targets = set(item.get("targets") or [])
    words = " ".join([item.get("name") or "", *(item.get("activities") or [])])
    return [
        key
        for key, _label, topic_targets, topic_words in TOPICS
        if targets & topic_targets or any(w in words for w in topic_words)
    ]


def _window(item: dict[str, Any]) -> dict[str, Any]:
    phone = item.get("phone") or None
    return {
        "id": item["id"],
        "name": item["name"],
        "is_sample": bool(item.get("is_sample")),
        "handles": handles(item),
        "hours": hours(item),
        "phone": phone,
        "tel": tel_href(phone),
        "address": item.get("address") or None,
    }


def arrange(items: list[dict[str, Any]], municipality_name: str | None) -> dict[str, Any]:
    """{"first": [windows], "topics": [{"key", "label", "windows"}]}: the 地域包括支援センター for this area
    (or, where none, the 総合相談 window) first; then every window under each topic it serves."""
    local_first = [
        i
        for i in items
        if "地域包括支援センター" in (i.get("name") or "")
        and not _covers_whole_municipality(i, municipality_name)
    ]
    general = [i for i in items if "総合相談" in (i.get("name") or "") and i not in local_first]
    if not local_first and not general:
        general = [
            i for i in items if any(w in " ".join(i.get("activities") or []) for w in _FIRST_WORDS)
        ]
    first = local_first + general
    topics = []
    for key, label, _targets, _words in TOPICS:
        windows = [_window(i) for i in items if key in _topics_of(i)]
        topics.append({"key": key, "label": label, "windows": windows})
    others = [_window(i) for i in items if not _topics_of(i)]
    if others:
        topics.append({"key": "other", "label": "そのほかの相談", "windows": others})
    return {"first": [_window(i) for i in first], "topics": topics}
