"""The listing's shapes and errors: a stored row as the contract's flat JSON, defaults for bulk inserts,
and what reading or changing a listing may raise."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic_core import PydanticUndefined
from sqlmodel import Session

from resdb import fields
from resdb.models import (
    Listing,
)

CONTRACT_FIELDS = fields.CONTRACT_FIELDS
EXTENSION_FIELDS = fields.EXTENSION_FIELDS
PUBLIC_FIELDS = fields.PUBLIC_FIELDS
# Called inside a write's transaction with (session, before, after): may refuse (raise) or add rows.
WriteHook = Callable[[Session, "dict[str, Any] | None", "dict[str, Any]"], None]


class NotFound(LookupError):
    pass


class StaleEdit(Exception):
    """The listing changed since the editor read it; nothing was written."""

    def __init__(self, current: dict[str, Any], expected_version: int | None) -> None:
        super().__init__(
            f"listing {current['id']} is at version {current['version']}, not {expected_version}"
        )
        self.current = current
        self.expected_version = expected_version


class Conflict(Exception):
    pass


def listing_to_dict(row: Listing) -> dict[str, Any]:
    """The contract's flat JSON shape (plus extensions) of a stored listing."""
    data: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        value = getattr(row, name)
        if isinstance(value, date):
            value = value.isoformat()
        data[name] = value
    return data


@lru_cache(maxsize=1)
def _defaults_template() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, info in Listing.model_fields.items():
        if info.default_factory is not None:
            values[name] = info.default_factory  # called per row
        else:
            values[name] = None if info.default is PydanticUndefined else info.default
    return values


def listing_defaults(given: Collection[str] = ()) -> dict[str, Any]:
    """Column values a new listing has when the input does not set them (for bulk inserts); the
    fields in `given` (set by the caller anyway) are left out, so their defaults are not made."""
    return {
        k: (v() if callable(v) else v) for k, v in _defaults_template().items() if k not in given
    }


# Public fields declared as dates (date or datetime values): the only ones public_dict converts.
_PUBLIC_DATES = tuple(n for n in PUBLIC_FIELDS if fields.spec(n).type == "date")


def public_dict(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a row dict (as listing_to_dict for a table object)."""
    get = row.get
    data = {name: get(name) for name in PUBLIC_FIELDS}
    for name in _PUBLIC_DATES:
        value = data[name]
        if isinstance(value, date):
            data[name] = value.isoformat()
    return data
