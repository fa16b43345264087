"""A Batch REST client in a page of standard library, signing as Azure's documentation says
(the README's recipe): for the tests of what Azure's SDK hides."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

API_VERSION = "2025-06-01"
SIGNED = ("Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type",
          "Date", "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range")


def rfc1123(when: datetime) -> str:
    return f"{when.astimezone(UTC):%a, %d %b %Y %H:%M:%S GMT}"


def string_to_sign(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
                   account: str) -> str:
    """VERB, the standard headers' values (Content-Length empty when 0), the ocp-* headers,
    then /account/path and the query parameters, names lower-cased and sorted."""
    lower = {k.lower(): v for k, v in headers.items()}
    values = [lower.get(h.lower(), "") for h in SIGNED]
    if values[2] == "0":
        values[2] = ""
    ocp = "".join(f"{k}:{v}\n" for k, v in sorted(lower.items()) if k.startswith("ocp-"))
    params = "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query, key=lambda kv: kv[0].lower()) if v)
    return "\n".join([method, *values]) + "\n" + ocp + f"/{account}{path}" + params


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json["code"])


@dataclass
class Raw:
    endpoint: str
    account: str
    key: str
    context: ssl.SSLContext | None = None
    sent: list[str] = field(default_factory=list)

    def send(
        self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None,
        headers: dict[str, str] | None = None, when: datetime | None = None,
        sign_query: list[tuple[str, str]] | None = None, api_version: str | None = API_VERSION,
    ) -> Answer:
        """`sign_query` signs other parameters than are sent (a tampered request)."""
        params = list(query or [])
        if api_version is not None:
            params.insert(0, ("api-version", api_version))
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"ocp-date": rfc1123(when or datetime.now(UTC))}
        if data is not None:
            hdrs["Content-Type"] = "application/json; odata=minimalmetadata"
            hdrs["Content-Length"] = str(len(data))
        hdrs.update(headers or {})
        raw_path = quote(path)
        text = string_to_sign(method, raw_path, sign_query if sign_query is not None else params,
                              hdrs, self.account)
        mac = hmac.new(base64.b64decode(self.key), text.encode(), hashlib.sha256).digest()
        hdrs.setdefault("Authorization", f"SharedKey {self.account}:{base64.b64encode(mac).decode()}")
        url = f"{self.endpoint}{raw_path}" + (f"?{urlencode(params, quote_via=quote)}" if params else "")
        self.sent.append(url)
        request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as r:
                return Answer(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, dict(e.headers), e.read())

    def follow(self, next_link: str) -> Answer:
        """GET an odata.nextLink as it is (it carries its own api-version)."""
        parts = urlsplit(next_link)
        assert f"{parts.scheme}://{parts.netloc}" == self.endpoint, next_link
        query = parse_qsl(parts.query, keep_blank_values=True)
        return self.send("GET", unquote(parts.path), query, api_version=None)
