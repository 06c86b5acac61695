"""The contract's controlled vocabulary: ASCII ids with Japanese labels (pure data)."""

from __future__ import annotations

KINDS: dict[str, str] = {
    "ibasho": "居場所",
    "kayoi": "通いの場",
    "shokudo": "地域食堂・子ども食堂",
    "kosodate": "子育て支援拠点",
    "chikatsu": "地域活動支援センター",
    "work_trial": "就労体験・就労訓練の場",
    "volunteer": "役割・ボランティアの場",
    "learning": "学び・講座",
    "center": "相談支援機関",
    "other": "その他",
    # Additions to the contract's list (documented in docs/places-venues-programmes.md): records that are
    # not activities a person joins. A venue is a building where activities happen (HSDS location);
    # a programme is a municipal scheme or subsidy. Neither is ever proposed by the matcher.
    "venue": "会場（建物）",
    "program": "事業・制度",
}

# Kinds that are places a person can take part in (everything the matcher may propose).
NOT_PARTICIPATION_KINDS: frozenset[str] = frozenset({"venue", "program"})
PARTICIPATION_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in NOT_PARTICIPATION_KINDS)
# Kinds hidden from search unless asked for (a kind filter naming them, or include_venues).
HIDDEN_IN_SEARCH_KINDS: tuple[str, ...] = ("venue",)

TARGETS: dict[str, str] = {
    "all": "属性を問わない",
    "elderly": "高齢者",
    "disability": "障がいのある人",
    "children": "子ども",
    "parents": "子育て中の親",
    "youth": "若者",
    "poverty": "生活に困りごとのある人",
    "hikikomori": "ひきこもり",
    "foreign": "外国籍の人",
}

GOALS: dict[str, str] = {
    "first_step": "外に出る一歩",
    "friends": "仲間・交流",
    "role": "役割・役に立ちたい",
    "work": "働きたい",
    "health": "健康・介護予防",
    "learn": "学びたい",
    "childcare_peers": "子育て仲間",
    "consult": "相談したい",
    "routine": "生活リズム",
}

WEEKDAYS: dict[str, str] = {
    "mon": "月",
    "tue": "火",
    "wed": "水",
    "thu": "木",
    "fri": "金",
    "sat": "土",
    "sun": "日",
}
WEEKDAY_IDS: tuple[str, ...] = tuple(WEEKDAYS)

MOBILITY: dict[str, str] = {
    "walk": "徒歩",
    "bicycle": "自転車",
    "bus": "バス",
    "car": "車",
    "pickup_needed": "送迎が必要",
}

GROUP_SIZES: dict[str, str] = {"small": "少人数", "medium": "中規模", "large": "大人数"}

# Extra Japanese spellings accepted on import for kinds and targets.
_KIND_ALIASES: dict[str, str] = {
    "地域食堂": "shokudo",
    "子ども食堂": "shokudo",
    "こども食堂": "shokudo",
    "子育て支援センター": "kosodate",
    "就労体験": "work_trial",
    "就労訓練": "work_trial",
    "ボランティア": "volunteer",
    "学び": "learning",
    "講座": "learning",
    "相談支援": "center",
    "相談窓口": "center",
    "サロン": "kayoi",
    "会場": "venue",
    "施設": "venue",
    "事業": "program",
    "制度": "program",
}
_TARGET_ALIASES: dict[str, str] = {
    "全世代": "all",
    "どなたでも": "all",
    "誰でも": "all",
    "障害者": "disability",
    "障がい者": "disability",
    "子ども": "children",
    "子育て": "parents",
    "親子": "parents",
    "若者": "youth",
    "生活困窮": "poverty",
    "生活困窮者": "poverty",
    "外国人": "foreign",
}


def _lookup(value: str, table: dict[str, str], aliases: dict[str, str]) -> str | None:
    text = value.strip()
    if text in table:
        return text
    for key, label in table.items():
        if text == label:
            return key
    return aliases.get(text)


def kind_id(value: str) -> str | None:
    """A kind id from an id or a Japanese label; None when unknown."""
    return _lookup(value, KINDS, _KIND_ALIASES)


def goal_id(value: str) -> str | None:
    """A goal id from an id or a Japanese label; None when unknown."""
    return _lookup(value, GOALS, {})


def mobility_id(value: str) -> str | None:
    """A mobility id from an id or a Japanese label; None when unknown."""
    return _lookup(value, MOBILITY, {})


def target_id(value: str) -> str | None:
    """A target id from an id or a Japanese label; None when unknown."""
    return _lookup(value, TARGETS, _TARGET_ALIASES)
