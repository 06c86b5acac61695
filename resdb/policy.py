"""Who may do what: the one policy function every door (editor pages, JSON API, CLI) goes through."""

from __future__ import annotations

from typing import Any

from resdb.accounts import ROLES, Account

# Listing actions: the actor's scope must cover the listing before AND after the change.
LISTING_ACTIONS = {"listing.create", "listing.update", "listing.verify", "listing.delete", "listing.restore",
                   "listing.import", "listing.correction", "listing.read_private"}
CASE_ACTIONS = {"case.create", "case.read", "case.write"}
ADMIN_ACTIONS = {"audit.read", "user.manage"}


class Forbidden(PermissionError):
    """The actor may not do this; the message says why in Japanese (no values from the request)."""


def scope_text(actor: Account) -> str:
    parts = []
    if actor.municipality_code:
        parts.append(f"地方公共団体コード {actor.municipality_code}")
    if actor.operator:
        parts.append(f"運営主体「{actor.operator}」")
    return "、".join(parts) or "—"


def authorize(actor: Account, action: str, target: dict[str, Any] | None = None,
              after: dict[str, Any] | None = None) -> None:
    """Raise Forbidden unless `actor` may do `action` to `target` (as it is) leaving it as `after`.

    Listings: admins everything; editors only inside their municipality / operator, before and after
    (so no edit, restore or import moves a listing into or out of their scope); coordinators nothing.
    Cases: coordinators their own (admins all). Audit log: admins."""
    if action in LISTING_ACTIONS:
        if actor.role == "admin":
            return
        if actor.role != "editor":
            raise Forbidden(f"役割「{ROLES.get(actor.role, actor.role)}」では掲載情報を編集できません")
        for listing in (target, after):
            if listing is not None and not actor.may_edit(listing):
                raise Forbidden(f"この掲載情報は担当範囲（{scope_text(actor)}）の外です")
        return
    if action in CASE_ACTIONS:
        if actor.role not in {"coordinator", "admin"}:
            raise Forbidden("ケースを扱えるのはコーディネーターだけです")
        if action != "case.create" and actor.role != "admin":
            owner = (target or {}).get("coordinator_id")
            if owner != actor.id:
                raise Forbidden("このケースは担当のコーディネーターだけが扱えます")
        return
    if action in ADMIN_ACTIONS:
        if actor.role != "admin":
            raise Forbidden("この操作は管理者だけができます")
        return
    raise Forbidden(f"不明な操作です: {action}")
