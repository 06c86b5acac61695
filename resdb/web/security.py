"""Security headers on every response (strict CSP, no inline script) and token-bucket rate limits that fit
offices: signed-in staff per account, anonymous clients per IP (X-Forwarded-For only from trusted proxies)."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, session

from resdb.web.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])


def tile_source(tile_url: str) -> str | None:
    """The CSP source for a tile URL template: scheme://host (`{s}` subdomains become `*`)."""
    parts = urlsplit(tile_url)
    if not parts.scheme or not parts.netloc:
        return None  # relative URL: same origin
    host = parts.netloc.replace("{s}", "*")
    if "{" in host:
        host = "*." + host.split(".", 1)[1] if "." in host else host
    return f"{parts.scheme}://{host}"


def content_security_policy(tile_url: str) -> str:
    images = ["'self'", "data:"]
    tiles = tile_source(tile_url)
    if tiles:
        images.append(tiles)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": images,
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def init_security_headers(app: Flask) -> None:
    policy = content_security_policy(app.config["TILE_URL"])

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Permissions-Policy", "geolocation=(self), camera=(), microphone=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.path.startswith("/api/") and request.method != "GET":
            headers.setdefault("Cache-Control", "no-store")
        return response


class TokenBucket:
    """Per-key buckets of `capacity` tokens refilled at `rate` per second (in-process memory)."""

    def __init__(
        self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when allowed (a token taken), else the seconds until the next token."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                allowed = 0.0
            else:
                self._buckets[key] = (tokens, now)
                allowed = (1.0 - tokens) / self.rate if self.rate > 0 else math.inf
            if len(self._buckets) > 10_000:
                self._prune(now)
        return allowed

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.rate if self.rate > 0 else math.inf
        for key, (_tokens, last) in list(self._buckets.items()):
            if now - last > full_after:
                del self._buckets[key]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(value: str | None) -> tuple[Network, ...]:
    """Trusted proxy addresses / networks from "10.0.0.1, 192.168.0.0/24" (empty: trust none)."""
    networks = []
    for part in (value or "").replace(";", ",").split(","):
        if part.strip():
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
    return tuple(networks)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(
    remote_addr: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]
) -> str:
    """The client's address: `X-Forwarded-For` is believed only when the connection comes from a trusted
    proxy, and then read from the right, skipping further trusted proxies (the rightmost untrusted hop)."""
    address = remote_addr or "unknown"
    if not proxies or not forwarded_for or not _trusted(address, proxies):
        return address
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return address  # a malformed header from the client side: fall back to the proxy
    return hops[0] if hops else address


def request_ip() -> str:
    return client_ip(
        request.remote_addr,
        request.headers.get("X-Forwarded-For"),
        current_app.config.get("TRUSTED_PROXIES") or (),
    )


def init_rate_limit(app: Flask) -> None:
    setting = app.config.get("RATE_LIMIT")
    staff = app.config.get("STAFF_RATE_LIMIT")
    app.extensions["resdb.limiter"] = TokenBucket(*setting) if setting else None
    app.extensions["resdb.staff_limiter"] = TokenBucket(*staff) if staff else None
    proxies = app.config.get("TRUSTED_PROXIES")
    if isinstance(proxies, str):
        app.config["TRUSTED_PROXIES"] = parse_proxies(proxies)


def _staff_key() -> str | None:
    """ "account:<id>" for a signed-in staff member (session cookie or API token), else None."""
    from resdb.web import auth

    account = None
    if "sid" in session:
        account = auth.session_account()
    elif request.headers.get("Authorization"):
        account = auth.bearer_account()
    return f"account:{account.id}" if account is not None else None


def rate_limit_key() -> tuple[TokenBucket | None, str]:
    """Which bucket a request draws from: its staff account's, else its client IP's."""
    staff_limiter: TokenBucket | None = current_app.extensions.get("resdb.staff_limiter")
    key = (
        _staff_key()
        if (staff_limiter is not None or current_app.extensions.get("resdb.limiter"))
        else None
    )
    if key is not None:
        return staff_limiter, key
    return current_app.extensions.get("resdb.limiter"), "ip:" + request_ip()


def rate_limited(view: F, scope: str = "") -> F:
    """Refuse with 429 (JSON under /api, a Japanese page elsewhere) when the client's bucket is empty.
    Views with another `scope` (sign-in) count apart from searches."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limiter, key = rate_limit_key()
        key = f"{scope}:{key}" if scope else key
        if limiter is not None:
            wait = limiter.take(key)
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                raise ApiError(
                    429,
                    f"アクセスが集中しています。{retry}秒ほど待ってから、もう一度お試しください。",
                    headers={"Retry-After": retry},
                )
        return view(*args, **kwargs)

    wrapper.__rate_limited__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def rate_limited_as(scope: str) -> Callable[[F], F]:
    """`rate_limited` with buckets of its own (e.g. "login": residents' searches never block a sign-in)."""
    return lambda view: rate_limited(view, scope)


CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def csrf_token() -> str:
    """The session's CSRF token (created on first use); forms put it in a hidden `csrf_token` field."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def init_csrf(app: Flask) -> None:
    """Every state-changing request outside /api (which takes Bearer tokens, not cookies) must carry
    the session's token; otherwise 400 and nothing happens."""
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _check_csrf() -> None:
        if request.method not in _UNSAFE or request.path.startswith("/api/"):
            return
        expected = session.get("csrf")
        given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
        if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
            raise ApiError(
                400,
                "フォームの有効期限が切れました。画面を読み込み直して、もう一度送ってください。",
                code="csrf",
            )
