"""Azure Batch's Shared Key authentication, pure: the string a client signs, the signature,
and the checks of a request's Authorization and date headers.

    Authorization: SharedKey <account>:<base64 HMAC-SHA256(base64-decoded key, StringToSign)>

    StringToSign = VERB \\n Content-Encoding \\n Content-Language \\n Content-Length \\n
                   Content-MD5 \\n Content-Type \\n Date \\n If-Modified-Since \\n If-Match \\n
                   If-None-Match \\n If-Unmodified-Since \\n Range \\n
                   CanonicalizedHeaders         each ocp-* header, "name:value\\n", names
                                                lower-cased, sorted
                   CanonicalizedResource        "/" account path (as sent, percent-encoded),
                                                then "\\nname:value" per query parameter with a
                                                value (decoded), sorted by name

Azure's documentation and Azure's own SDKs build two slightly different strings, and Azure
accepts both, so Shoal does too (`VARIANTS`):
- as the SDKs sign (azure-batch's BatchSharedKeyAuthPolicy): query names keep their case
  (`timeOut`), a parameter's first value only, and a POST/PUT/PATCH/DELETE without a body signs
  its Content-Length as "0";
- as documented: query names lower-cased, several values sorted and joined by commas, and a
  Content-Length of 0 signed as the empty string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from gateway.rest.errors import RestError, authentication_failed

WINDOW = timedelta(minutes=15)
"""How far a request's date may be from the server's clock, either way (Azure's 15 minutes)."""

SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type",
    "date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)
VARIANTS = ("sdk", "documented")
BODYLESS = ("GET", "HEAD")


def string_to_sign(
    method: str, headers: Mapping[str, str], raw_path: str, query: Sequence[tuple[str, str]],
    account: str, variant: str = "sdk",
) -> str:
    """The string a client signs. `headers` by lower-case name; `raw_path` as sent (still
    percent-encoded); `query` the decoded (name, value) pairs in the order sent."""
    method = method.upper()
    values = {name: headers.get(name, "") for name in SIGNED_HEADERS}
    length = values["content-length"]
    if variant == "sdk":
        if not length and method not in BODYLESS:
            values["content-length"] = "0"
    elif length == "0":
        values["content-length"] = ""
    lines = [method, *(values[name] for name in SIGNED_HEADERS)]
    ocp = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("ocp-") and v)
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in ocp)
    return "\n".join(lines) + "\n" + canonical_headers + canonical_resource(
        account, raw_path, query, variant
    )


def canonical_resource(
    account: str, raw_path: str, query: Sequence[tuple[str, str]], variant: str = "sdk"
) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        key = name if variant == "sdk" else name.lower()
        grouped.setdefault(key, []).append(value)
    out = f"/{account}{raw_path}"
    for name in sorted(grouped):
        found = grouped[name]
        value = found[0] if variant == "sdk" else ",".join(sorted(v for v in found if v))
        if value:
            out += f"\n{name}:{value}"
    return out


def decode_key(key: str) -> bytes:
    """The HMAC key of an account key, decoded as Azure's SDKs decode it."""
    return base64.b64decode(key)


def sign(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def authorization(account: str, key: str, text: str) -> str:
    """The Authorization header a client sends for a string to sign."""
    return f"SharedKey {account}:{sign(decode_key(key), text)}"


def parse_authorization(header: str) -> tuple[str, str]:
    """(account, signature) of an Authorization header; RestError 403 if it is not Shared Key."""
    if not header:
        raise authentication_failed("The Authorization header is missing; send "
                                    "'SharedKey <account>:<signature>'")
    scheme, _, rest = header.strip().partition(" ")
    account, sep, signature = rest.strip().rpartition(":")
    if scheme != "SharedKey" or not sep or not account or not signature:
        raise authentication_failed("The Authorization header is not of the form "
                                    "'SharedKey <account>:<signature>'")
    return account, signature


def request_time(headers: Mapping[str, str], now: datetime) -> datetime:
    """When the request says it was made (ocp-date, else Date); RestError 403 if neither is
    there or readable, or if it is more than `WINDOW` away from `now`."""
    name = "ocp-date" if headers.get("ocp-date") else "date"
    raw = headers.get(name, "")
    if not raw:
        raise authentication_failed("The request has neither an ocp-date nor a Date header")
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise authentication_failed(f"The {name} header {raw!r} is not an RFC 1123 date")
    if abs(now - when) > WINDOW:
        raise authentication_failed(
            f"Request date header too old or in the future: {name} is {raw}, the server's time "
            f"is {now.astimezone(UTC):%a, %d %b %Y %H:%M:%S GMT}; requests are accepted within "
            "15 minutes"
        )
    return when


def verify(
    key: str, signature: str, account: str, method: str, headers: Mapping[str, str],
    raw_path: str, query: Sequence[tuple[str, str]],
) -> bool:
    """Whether `signature` signs this request with `key` in one of the `VARIANTS`."""
    try:
        secret = decode_key(key)
    except (binascii.Error, ValueError):
        return False
    given = signature.encode()
    return any(
        hmac.compare_digest(
            sign(secret, string_to_sign(method, headers, raw_path, query, account, v)).encode(),
            given,
        )
        for v in VARIANTS
    )


def mismatch(account: str) -> RestError:
    """The answer to a request whose signature is not its account's, or whose account does not
    exist: one answer for both, so account names cannot be probed."""
    return authentication_failed(
        f"The MAC signature found in the HTTP request is not the same as any computed "
        f"signature for account {account!r}"
    )
