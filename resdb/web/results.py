"""Short-lived match results for Post/Redirect/Get: encrypted files in the instance folder, readable only with
the unguessable token in the result's URL and the staff session that made them, deleted after minutes.

Why: the browser's Back button after 「場所を比べる」 must find the proposals again, yet nothing typed about the
person may go into a URL, a cookie, a log or the database. The URL carries only a random token. The file
name is a hash of the token; the AES-GCM key is derived from the token and the server-side session id, so
neither the folder, nor the access log, nor both together open a result without that live session. Files
are shared by every gunicorn worker (same instance folder) and removed when read after expiry or swept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEFAULT_TTL_SECONDS = 15 * 60
_HEADER = struct.Struct(">Q")  # expiry (unix seconds), stored in clear and authenticated
_NONCE_BYTES = 12
_TOKEN_BYTES = 32


class ResultGone(Exception):
    """The result expired, never existed, or belongs to another session."""


def _name(token: str) -> str:
    return hashlib.sha256(b"resdb-result-name|" + token.encode()).hexdigest()[:40]


def _key(token: str, session_id: str) -> bytes:
    return hmac.new(
        token.encode(), b"resdb-result-key|" + session_id.encode(), hashlib.sha256
    ).digest()


def valid_token(token: str) -> bool:
    try:
        return (
            len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == _TOKEN_BYTES
            and "=" not in token
        )
    except (ValueError, TypeError):
        return False


class ResultStore:
    """put() a JSON-able payload for one session and get a token; get() it back until it expires."""

    def __init__(
        self,
        folder: Path,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.ttl = ttl_seconds
        self.clock = clock

    def _path(self, token: str) -> Path:
        return self.folder / f"{_name(token)}.bin"

    def put(self, payload: dict[str, Any], session_id: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sweep()
        token = base64.urlsafe_b64encode(secrets.token_bytes(_TOKEN_BYTES)).rstrip(b"=").decode()
        header = _HEADER.pack(int(self.clock()) + self.ttl)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plain = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = AESGCM(_key(token, session_id)).encrypt(nonce, plain, header)
        path = self._path(token)
        temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(header + nonce + sealed)
        os.replace(temporary, path)
        return token

    def get(self, token: str, session_id: str) -> dict[str, Any]:
        if not valid_token(token):
            raise ResultGone(token)
        path = self._path(token)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ResultGone(token) from None
        header = data[: _HEADER.size]
        (expires,) = _HEADER.unpack(header)
        if expires <= self.clock():
            path.unlink(missing_ok=True)
            raise ResultGone(token)
        nonce, sealed = (
            data[_HEADER.size : _HEADER.size + _NONCE_BYTES],
            data[_HEADER.size + _NONCE_BYTES :],
        )
        try:
            plain = AESGCM(_key(token, session_id)).decrypt(nonce, sealed, header)
        except InvalidTag:
            raise ResultGone(token) from None
        stored: dict[str, Any] = json.loads(plain)
        return stored

    def expires_at(self, token: str) -> float | None:
        try:
            (expires,) = _HEADER.unpack(self._path(token).read_bytes()[: _HEADER.size])
        except (FileNotFoundError, struct.error):
            return None
        return float(expires)

    def sweep(self) -> int:
        """Delete every expired result (and stale temporary files); the number removed."""
        removed = 0
        now = self.clock()
        if not self.folder.exists():
            return 0
        for path in self.folder.iterdir():
            try:
                if path.suffix == ".tmp":
                    if path.stat().st_mtime < now - 60:
                        path.unlink(missing_ok=True)
                        removed += 1
                    continue
                with path.open("rb") as fh:
                    (expires,) = _HEADER.unpack(fh.read(_HEADER.size))
                if expires <= now:
                    path.unlink(missing_ok=True)
                    removed += 1
            except (FileNotFoundError, struct.error, OSError):
                continue
        return removed
