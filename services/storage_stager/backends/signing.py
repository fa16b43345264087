"""Signed URLs of the local backend's HTTP server, pure.

A URL carries its expiry and an HMAC over method, key and expiry, with a key derived from the
cluster secret: the stager alone can mint one, it opens exactly one object for one method, and
it cannot be altered or extended.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

PATH_PREFIX = "/o/"
# What we mint, exactly. Checked before anything else: str.isdigit() takes "²", which int()
# refuses, and compare_digest() raises on non-ASCII text.
EXPIRES_RE = re.compile(r"[0-9]{1,12}")
SIG_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class UrlSigner:
    key: bytes
    base_url: str
    """Where agents reach the server, e.g. http://10.0.0.5:50055 (no trailing slash)."""

    @classmethod
    def from_secret(cls, cluster_secret: str, base_url: str) -> UrlSigner:
        # Derived, so a leaked URL signature says nothing about the service token's key.
        key = hmac.new(bytes.fromhex(cluster_secret), b"storage-url-signing", hashlib.sha256)
        return cls(key.digest(), base_url.rstrip("/"))

    def signature(self, method: str, key: str, expires: int) -> str:
        text = f"{method.upper()}\n{key}\n{expires}".encode()
        return hmac.new(self.key, text, hashlib.sha256).hexdigest()

    def url(self, method: str, key: str, expires: int) -> str:
        sig = self.signature(method, key, expires)
        return f"{self.base_url}{PATH_PREFIX}{quote(key, safe='/')}?expires={expires}&sig={sig}"

    def check(self, method: str, key: str, expires: str, sig: str, now: float) -> bool:
        """Whether a request may proceed: untampered and not expired. HEAD is a GET."""
        if method.upper() == "HEAD":
            method = "GET"
        if EXPIRES_RE.fullmatch(expires) is None or SIG_RE.fullmatch(sig) is None:
            return False
        if int(expires) < now:
            return False
        return hmac.compare_digest(self.signature(method, key, int(expires)), sig)
