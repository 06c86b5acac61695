"""Who may do what: the one policy function every door (editor pages, JSON API, CLI) goes through."""

from __future__ import annotations

from typing import Any

from resdb.accounts import ROLES, Account

# Listing actions: the actor's scope must cover the listing before AND after the change.
LISTING_ACTIONS = {
    "listing.create",
    "listing.update",
    "listing.verify",
    "listing.delete",
    "listing.restore",
    "listing.import",
    "listing.correction",
    "listing.read_private",
    "listing.capacity",
}
# What a host organisation may do to its own listings (scope: listings whose operator is the host).
HOST_LISTING_ACTIONS = {"listing.update", "listing.read_private", "listing.capacity"}
REFERRAL_ACTIONS = {"referral.send", "referral.read", "referral.answer", "referral.update"}
SHEET_ACTIONS = {"sheet.submit", "sheet.own", "sheet.read", "sheet.update"}
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


def authorize(
    actor: Account,
    action: str,
    target: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Raise Forbidden unless `actor` may do `action` to `target` (as it is) leaving it as `after`.

    Listings: admins everything; editors only inside their municipality / operator, before and after
    (so no edit, restore or import moves a listing into or out of their scope); coordinators nothing.
    Cases: coordinators their own (admins all). Audit log: admins."""
    if action in LISTING_ACTIONS:
        if actor.role == "admin":
            return
        if actor.role == "host" and action in HOST_LISTING_ACTIONS:
            for listing in (target, after):
                if listing is not None and not actor.may_edit(listing):
                    raise Forbidden(f"この掲載情報は団体「{actor.operator}」のものではありません")
            return
        if actor.role != "editor":
            raise Forbidden(
                f"役割「{ROLES.get(actor.role, actor.role)}」では掲載情報を編集できません"
            )
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
    if action in REFERRAL_ACTIONS:
        _authorize_referral(actor, action, target or {})
        return
    if action in SHEET_ACTIONS:
        _authorize_sheet(actor, action, target or {})
        return
    if action in ADMIN_ACTIONS:
        if actor.role != "admin":
            raise Forbidden("この操作は管理者だけができます")
        return
    raise Forbidden(f"不明な操作です: {action}")


def _authorize_referral(actor: Account, action: str, referral: dict[str, Any]) -> None:
    """Referrals: the coordinator who owns the case sends and follows them; the host organisation they are
    addressed to reads and answers them; both sides move the shared status. Nobody else sees them."""
    if action == "referral.send":
        if actor.role not in {"coordinator", "admin"}:
            raise Forbidden("紹介を送れるのはコーディネーターだけです")
        if actor.role != "admin" and referral.get("coordinator_id") != actor.id:
            raise Forbidden("このケースは担当のコーディネーターだけが扱えます")
        return
    if actor.role == "host":
        if not actor.operator or referral.get("host") != actor.operator:
            raise Forbidden("この紹介はほかの受け入れ先あてです")
        return
    if action == "referral.answer":
        raise Forbidden("紹介に回答できるのは受け入れ先だけです")
    if actor.role == "admin" or (
        actor.role == "coordinator" and referral.get("coordinator_id") == actor.id
    ):
        return
    raise Forbidden("この紹介は担当のコーディネーターと受け入れ先だけが扱えます")


def _authorize_sheet(actor: Account, action: str, sheet: dict[str, Any]) -> None:
    """相談依頼シート: registered supporters send them and see only whether each was received or closed;
    only the receiving window (accounts registered with that window) reads and works on them."""
    if action == "sheet.submit":
        if actor.role != "supporter":
            raise Forbidden("相談依頼シートを送れるのは登録された地域の支援者だけです")
        return
    if action == "sheet.own":
        if actor.role != "supporter" or sheet.get("supporter_id") != actor.id:
            raise Forbidden("このシートを送った支援者だけが状況を見られます")
        return
    if (
        actor.role in {"supporter", "host"}
        or not actor.window
        or sheet.get("window", actor.window) != actor.window
    ):
        raise Forbidden("相談依頼シートは受け付けた窓口だけが見られます")
