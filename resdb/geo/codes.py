"""Municipality codes (check digit), kanji numerals and 丁目 readings, and splitting area names."""

from __future__ import annotations

import re
import unicodedata

from resdb.domain.textnorm import normalize, place_key

# Names a plan uses for "the whole municipality" (障がい者相談支援 etc.: 担当地区 = 全市).
WHOLE_MUNICIPALITY = frozenset(
    normalize(name)
    for name in (
        "全市",
        "市全域",
        "市内全域",
        "全域",
        "全町",
        "町全域",
        "町内全域",
        "全村",
        "村全域",
    )
)


_KANJI_DIGITS = "〇一二三四五六七八九"
_CHOME_RE = re.compile(r"^(?P<base>.+?)(?P<num>[一二三四五六七八九十]+)丁目$")
_ARABIC_CHOME_RE = re.compile(r"(\d+)\s*丁目")
_AREA_SEPARATORS = re.compile(r"[、,，・･/／\s]+")

_CHOME_KANA_UNITS = ("", "イチ", "ニ", "サン", "ヨン", "ゴ", "ロク", "ナナ", "ハチ", "キュウ")


def check_digit(code5: str) -> str:
    """The check digit of a 5-digit 全国地方公共団体コード (weights 6,5,4,3,2; mod 11)."""
    if len(code5) != 5 or not code5.isdigit():
        raise ValueError(f"not a 5-digit municipality code: {code5!r}")
    total = sum(int(digit) * weight for digit, weight in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def code6(code: str) -> str:
    """The 6-digit municipality code (with check digit) from a 5- or 6-digit code."""
    code = code.strip()
    if len(code) == 6 and code.isdigit():
        if check_digit(code[:5]) != code[5]:
            raise ValueError(f"bad check digit in municipality code {code!r}")
        return code
    return code + check_digit(code)


def code5(code: str) -> str:
    """The 5-digit municipality code (the data folder name) from a 5- or 6-digit code."""
    return code6(code)[:5]


def kanji_number(value: int) -> str:
    """1..99 as the kanji numeral used in 町字 names (11 → 十一, 20 → 二十)."""
    if not 0 < value < 100:
        raise ValueError(f"out of range for a 丁目 numeral: {value}")
    tens, units = divmod(value, 10)
    text = ""
    if tens:
        text = ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十"
    if units:
        text += _KANJI_DIGITS[units]
    return text


def parse_kanji_number(text: str) -> int | None:
    """The value of a kanji numeral up to 99 (十九 → 19), or None."""
    if not text or any(ch not in _KANJI_DIGITS + "十" for ch in text) or text.count("十") > 1:
        return None
    if "十" in text:
        tens_text, _, units_text = text.partition("十")
        if len(tens_text) > 1 or len(units_text) > 1:
            return None
        tens = _KANJI_DIGITS.index(tens_text) if tens_text else 1
        units = _KANJI_DIGITS.index(units_text) if units_text else 0
        return tens * 10 + units
    return _KANJI_DIGITS.index(text) if len(text) == 1 else None


def chome_kana(value: int) -> str:
    """Reading of "N丁目" in katakana (3 → サンチョウメ, 1 → イッチョウメ, 10 → ジュッチョウメ)."""
    tens, units = divmod(value, 10)
    head = ""
    if tens:
        head = ("" if tens == 1 else _CHOME_KANA_UNITS[tens]) + "ジュウ"
    if units:
        unit = _CHOME_KANA_UNITS[units]
        head += {1: "イッ", 8: "ハッ"}.get(units, unit)
    elif head:
        head = head[:-1] + "ッ"  # ジュウ → ジュッ
    return head + "チョウメ"


def split_chome(town: str) -> tuple[str, int | None]:
    """(base name, 丁目 number) of a 町字 name: 南太閤山三丁目 → (南太閤山, 3); 戸破 → (戸破, None)."""
    match = _CHOME_RE.match(town)
    if match:
        number = parse_kanji_number(match.group("num"))
        if number:
            return match.group("base"), number
    return town, None


def arabic_chome_to_kanji(text: str) -> str:
    """Rewrite arabic 丁目 numbers as the kanji the 町字 names use: 3丁目 → 三丁目 (after NFKC)."""
    text = unicodedata.normalize("NFKC", text)

    def repl(match: re.Match[str]) -> str:
        value = int(match.group(1))
        return f"{kanji_number(value)}丁目" if 0 < value < 100 else match.group(0)

    return _ARABIC_CHOME_RE.sub(repl, text)


def split_area_names(text: str) -> list[str]:
    """Split a 担当地区 cell such as "坂浜・平尾" or "庄西町、港町" into names."""
    return [part for part in _AREA_SEPARATORS.split(text.strip()) if part]


def town_key(name: str) -> str:
    return place_key(arabic_chome_to_kanji(name))
