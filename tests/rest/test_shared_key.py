"""Shared Key, pure: the string to sign against one written out by hand from Azure's
documentation, and signatures made by Azure's own SDK (its signing policy, run as it runs for
every request) accepted — and refused once anything signed is changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from gateway.rest import shared_key
from gateway.rest.errors import RestError

KEY = base64.b64encode(bytes(range(64))).decode()
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
DATE = "Fri, 01 May 2026 12:00:00 GMT"


def test_the_string_to_sign_is_azures() -> None:
    headers = {
        "content-type": "application/json; odata=minimalmetadata",
        "content-length": "27",
        "ocp-date": DATE,
        "if-match": '"0x1"',
        "client-request-id": "not-signed",
    }
    query = [("api-version", "2025-06-01"), ("timeOut", "30"), ("$filter", "state eq 'active'")]
    text = shared_key.string_to_sign("post", headers, "/jobs/j%201/terminate", query, "acct")
    assert text == (
        "POST\n\n\n27\n\napplication/json; odata=minimalmetadata\n\n\n\"0x1\"\n\n\n\n"
        f"ocp-date:{DATE}\n"
        "/acct/jobs/j%201/terminate\n$filter:state eq 'active'\napi-version:2025-06-01\ntimeOut:30"
    )
    documented = shared_key.string_to_sign("post", headers, "/jobs/j%201/terminate", query, "acct",
                                           "documented")
    assert documented.endswith("api-version:2025-06-01\ntimeout:30")


def test_a_bodyless_change_signs_its_length_as_0_or_as_empty() -> None:
    sdk = shared_key.string_to_sign("DELETE", {}, "/pools/p", [], "acct", "sdk")
    documented = shared_key.string_to_sign("DELETE", {"content-length": "0"}, "/pools/p", [],
                                           "acct", "documented")
    assert sdk.split("\n")[3] == "0" and documented.split("\n")[3] == ""
    assert shared_key.string_to_sign("GET", {}, "/pools", [], "acct").split("\n")[3] == ""


def test_the_signature_is_base64_hmac_sha256_of_the_decoded_key() -> None:
    text = "GET\n\n\n\n\n\n\n\n\n\n\n\nocp-date:x\n/acct/pools"
    expected = base64.b64encode(
        hmac.new(bytes(range(64)), text.encode(), hashlib.sha256).digest()
    ).decode()
    assert shared_key.authorization("acct", KEY, text) == f"SharedKey acct:{expected}"


def _signed_by_sdk(method: str, url: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[dict[str, str], str, list[tuple[str, str]]]:
    """What the server sees of a request Azure's SDK signed: headers, raw path, query."""
    request = HttpRequest(method, url, headers={"ocp-date": DATE, **(headers or {})}, content=body)
    if body is not None:
        request.headers["Content-Type"] = "application/json; odata=minimalmetadata"
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential("acct", KEY))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    parts = urlsplit(request.url)
    seen = {k.lower(): v for k, v in request.headers.items()}
    if body is not None:
        seen["content-length"] = str(len(body))
    return seen, parts.path, parse_qsl(parts.query, keep_blank_values=True)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://acct.example/jobs?api-version=2025-06-01&maxresults=5&%24filter=state%20eq%20%27active%27&timeOut=30", None),
        ("POST", "https://acct.example/jobs/j1/addtaskcollection?api-version=2025-06-01", b'{"value": []}'),
        ("DELETE", "https://acct.example/pools/p%2Dx?api-version=2025-06-01", None),
        ("GET", "https://acct.example/jobs/j1/tasks?api-version=2025-06-01&%24select=id%2Cstate&%24skiptoken=djE6dDQ%3D", None),
    ],
)
def test_what_the_sdk_signs_is_accepted_and_any_change_refused(method: str, url: str, body: bytes | None) -> None:
    headers, path, query = _signed_by_sdk(method, url, body)
    _, signature = shared_key.parse_authorization(headers["authorization"])
    assert shared_key.verify(KEY, signature, "acct", method, headers, path, query)
    assert not shared_key.verify(KEY, signature, "acct", method, headers, path + "x", query)
    assert not shared_key.verify(KEY, signature, "acct", "PUT", headers, path, query)
    assert not shared_key.verify(KEY, signature, "other", method, headers, path, query)
    assert not shared_key.verify(KEY, signature, "acct", method, headers, path, [*query, ("force", "true")])
    assert not shared_key.verify(KEY, signature, "acct", method,
                                 {**headers, "ocp-date": "Fri, 01 May 2026 12:00:01 GMT"}, path, query)
    other_key = base64.b64encode(bytes(64)).decode()
    assert not shared_key.verify(other_key, signature, "acct", method, headers, path, query)


def test_if_match_is_signed() -> None:
    headers, path, query = _signed_by_sdk("DELETE", "https://acct.example/pools/p?api-version=2025-06-01",
                                          headers={"If-Match": '"0xA"'})
    _, signature = shared_key.parse_authorization(headers["authorization"])
    assert shared_key.verify(KEY, signature, "acct", "DELETE", headers, path, query)
    assert not shared_key.verify(KEY, signature, "acct", "DELETE", {**headers, "if-match": '"0xB"'},
                                 path, query)


@pytest.mark.parametrize("header", ["", "Bearer abc", "SharedKey acct", "SharedKey :sig", "SharedKeyLite a:b"])
def test_a_malformed_authorization_is_authentication_failed(header: str) -> None:
    with pytest.raises(RestError) as caught:
        shared_key.parse_authorization(header)
    assert (caught.value.status, caught.value.code) == (403, "AuthenticationFailed")


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16)])
def test_a_date_outside_15_minutes_is_refused(skew: timedelta) -> None:
    date = f"{NOW + skew:%a, %d %b %Y %H:%M:%S GMT}"
    with pytest.raises(RestError) as caught:
        shared_key.request_time({"ocp-date": date}, NOW)
    assert (caught.value.status, caught.value.code) == (403, "AuthenticationFailed")
    assert "15 minutes" in dict(caught.value.values)["AuthenticationErrorDetail"]


def test_a_date_inside_the_window_is_taken_and_ocp_date_wins_over_date() -> None:
    inside = f"{NOW - timedelta(minutes=14):%a, %d %b %Y %H:%M:%S GMT}"
    assert shared_key.request_time({"ocp-date": inside, "date": "garbage"}, NOW) == NOW - timedelta(minutes=14)
    assert shared_key.request_time({"date": DATE}, NOW) == NOW
    for headers in ({}, {"ocp-date": "yesterday"}):
        with pytest.raises(RestError):
            shared_key.request_time(headers, NOW)
