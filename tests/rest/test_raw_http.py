"""The wire contract where Azure's SDK hides it, with a standard-library client that signs
as Azure's documentation says: the signature and its 15-minute window, api-version, ETags and
If-Match, $select, odata.nextLink paging, request ids, Azure's error body, and HTTPS."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.accounts import create_account
from shoal.cluster_config import RestConfig
from shoal.suite import LocalSuite
from tests.rest.raw import Answer, Raw
from tests.support import FAST, wait_for


@pytest.fixture(scope="module")
def raw(shared_suite: LocalSuite) -> Raw:
    cc = shared_suite.client_config
    return Raw(shared_suite.rest_endpoint, cc.account, cc.key)


@pytest.fixture(scope="module")
def idle_job(raw: Raw) -> str:
    """A job on a pool without nodes: its tasks wait, and stay as they were added."""
    assert raw.send("POST", "/pools", body={"id": "empty", "vmSize": "x", "targetDedicatedNodes": 0}).status == 201
    assert raw.send("POST", "/jobs", body={"id": "idle", "poolInfo": {"poolId": "empty"}}).status == 201
    tasks = [{"id": f"{'a' if i % 2 else 'b'}{i:02}", "commandLine": "/bin/true"} for i in range(10)]
    added = raw.send("POST", "/jobs/idle/addtaskcollection", body={"value": tasks})
    assert added.status == 200 and {r["status"] for r in added.json["value"]} == {"success"}
    return "idle"


def azure_error(answer: Answer, status: int, code: str) -> dict[str, str]:
    """Check an answer is Azure's error body; return its values."""
    assert answer.status == status, (answer.status, answer.body)
    body = answer.json
    assert body["code"] == code, body
    assert body["odata.metadata"].endswith("#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element")
    assert body["message"]["lang"] == "en-US"
    assert f"RequestId:{answer.headers['request-id']}" in body["message"]["value"]
    return {v["key"]: v["value"] for v in body["values"]}


def test_a_signed_request_within_15_minutes_is_served(raw: Raw) -> None:
    now = datetime.now(UTC)
    for skew in (timedelta(minutes=-14), timedelta(0), timedelta(minutes=14)):
        assert raw.send("GET", "/pools", when=now + skew).status == 200


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16)])
def test_a_request_dated_outside_15_minutes_is_refused(raw: Raw, skew: timedelta) -> None:
    answer = raw.send("GET", "/pools", when=datetime.now(UTC) + skew)
    detail = azure_error(answer, 403, "AuthenticationFailed")["AuthenticationErrorDetail"]
    assert "15 minutes" in detail


def test_a_changed_or_missing_signature_is_refused_and_changes_nothing(raw: Raw) -> None:
    body = {"id": "sneaky", "vmSize": "x", "targetDedicatedNodes": 0}
    tampered = raw.send("POST", "/pools", body=body, sign_query=[("api-version", "2024-07-01.20.0")])
    azure_error(tampered, 403, "AuthenticationFailed")
    unsigned = raw.send("POST", "/pools", body=body, headers={"Authorization": ""})
    azure_error(unsigned, 403, "AuthenticationFailed")
    stranger = Raw(raw.endpoint, "nobody", raw.key).send("GET", "/pools")
    azure_error(stranger, 403, "AuthenticationFailed")
    pools = raw.send("GET", "/pools", [("$filter", "id eq 'sneaky'")])
    assert pools.json["value"] == []


def test_api_version_is_required(raw: Raw) -> None:
    missing = raw.send("GET", "/pools", api_version=None)
    assert azure_error(missing, 400, "MissingRequiredQueryParameter")["QueryParameterName"] == "api-version"
    bad = raw.send("GET", "/pools", api_version="latest")
    assert azure_error(bad, 400, "InvalidQueryParameterValue")["QueryParameterName"] == "api-version"


def test_etag_if_match_and_if_none_match(raw: Raw, idle_job: str) -> None:
    got = raw.send("GET", "/pools/empty")
    etag, modified = got.headers["ETag"], got.headers["Last-Modified"]
    assert got.json["eTag"] == etag and got.json["lastModified"]
    assert raw.send("GET", "/pools/empty", headers={"If-None-Match": etag}).status == 304
    assert raw.send("GET", "/pools/empty", headers={"If-Modified-Since": modified}).status == 304

    stale = raw.send("POST", "/pools/empty/resize", body={"targetDedicatedNodes": 1},
                     headers={"If-Match": '"0xDEADBEEF"'})
    azure_error(stale, 412, "ConditionNotMet")
    assert raw.send("GET", "/pools/empty").json["targetDedicatedNodes"] == 0

    task = raw.send("GET", f"/jobs/{idle_job}/tasks/a01")
    azure_error(raw.send("DELETE", f"/jobs/{idle_job}/tasks/a01", headers={"If-Match": '"0x1"'}),
                412, "ConditionNotMet")
    azure_error(raw.send("DELETE", f"/jobs/{idle_job}", headers={"If-Match": '"0x1"'}), 412, "ConditionNotMet")
    assert raw.send("GET", f"/jobs/{idle_job}/tasks/a01").status == 200
    ok = raw.send("POST", f"/jobs/{idle_job}/tasks/a01/terminate", headers={"If-Match": task.headers["ETag"]})
    assert ok.status == 204
    after = raw.send("GET", f"/jobs/{idle_job}/tasks/a01")
    assert after.json["state"] == "completed" and after.headers["ETag"] != task.headers["ETag"]


def test_a_job_patch_with_a_stale_if_match_changes_nothing(raw: Raw, idle_job: str) -> None:
    etag = raw.send("GET", f"/jobs/{idle_job}").headers["ETag"]
    ok = raw.send("PATCH", f"/jobs/{idle_job}", body={"priority": 4}, headers={"If-Match": etag})
    assert ok.status == 200 and ok.headers["ETag"] != etag
    stale = raw.send("PATCH", f"/jobs/{idle_job}", body={"priority": 8}, headers={"If-Match": etag})
    assert azure_error(stale, 412, "ConditionNotMet")["ShoalReason"] == "CONDITION_NOT_MET"
    assert raw.send("GET", f"/jobs/{idle_job}").json["priority"] == 4
    # An empty patch changes nothing and still answers the job's ETag, or 412 for a stale one.
    same = raw.send("PATCH", f"/jobs/{idle_job}", body={})
    assert same.status == 200 and same.headers["ETag"] == ok.headers["ETag"]
    azure_error(raw.send("PATCH", f"/jobs/{idle_job}", body={}, headers={"If-Match": etag}), 412, "ConditionNotMet")
    azure_error(raw.send("PATCH", "/jobs/ghost", body={"priority": 1}), 404, "JobNotFound")


def test_select_trims_what_is_served(raw: Raw, idle_job: str) -> None:
    job = raw.send("GET", f"/jobs/{idle_job}", [("$select", "id,state")])
    assert set(job.json) == {"odata.metadata", "id", "state"} and job.json["id"] == idle_job
    tasks = raw.send("GET", f"/jobs/{idle_job}/tasks", [("$select", "id"), ("maxresults", "3")])
    assert [set(t) for t in tasks.json["value"]] == [{"id"}] * 3


def test_next_link_carries_the_page_token_and_the_options(raw: Raw, idle_job: str) -> None:
    first = raw.send("GET", f"/jobs/{idle_job}/tasks",
                     [("maxresults", "2"), ("$filter", "startswith(id,'b')"), ("$select", "id")])
    pages = [first.json]
    while "odata.nextLink" in pages[-1]:
        link = pages[-1]["odata.nextLink"]
        assert "%24skiptoken=" in link and "maxresults=2" in link and "%24filter=" in link
        answer = raw.follow(link)
        assert answer.status == 200, answer.body
        pages.append(answer.json)
    assert [[t["id"] for t in p["value"]] for p in pages] == [["b00", "b02"], ["b04", "b06"], ["b08"]]
    bad = raw.send("GET", f"/jobs/{idle_job}/tasks", [("$skiptoken", "not-a-token")])
    azure_error(bad, 400, "InvalidPropertyValue")


def test_every_answer_has_a_request_id_and_echoes_the_client_s(raw: Raw) -> None:
    mine = str(uuid.uuid4())
    echoed = raw.send("GET", "/pools", headers={"client-request-id": mine, "return-client-request-id": "true"})
    assert echoed.headers["client-request-id"] == mine
    quiet = raw.send("GET", "/pools", headers={"client-request-id": mine})
    assert "client-request-id" not in quiet.headers
    failed = raw.send("GET", "/pools/ghost", headers={"client-request-id": mine, "return-client-request-id": "true"})
    assert failed.headers["client-request-id"] == mine
    ids = {echoed.headers["request-id"], quiet.headers["request-id"], failed.headers["request-id"]}
    assert len(ids) == 3
    azure_error(failed, 404, "PoolNotFound")


def test_what_shoal_does_not_serve_is_said_so(raw: Raw) -> None:
    unknown = raw.send("GET", "/certificates")
    azure_error(unknown, 400, "InvalidUri")
    assert "README" in unknown.json["message"]["value"]
    azure_error(raw.send("PUT", "/pools/x", body={"metadata": []}), 405, "UnsupportedHttpVerb")
    azure_error(raw.send("GET", "/jobs/x/tasks/y/files/wd/out.txt"), 404, "FileNotFound")
    azure_error(raw.send("POST", "/jobs", body=[1, 2]), 400, "InvalidPropertyValue")
    bad_json = raw.send("POST", "/jobs", headers={"Content-Type": "application/json"}, body="{")
    assert bad_json.status == 400


def test_a_task_file_in_ranges(raw: Raw) -> None:
    raw.send("POST", "/pools", body={"id": "files", "vmSize": "x", "targetDedicatedNodes": 1})
    raw.send("POST", "/jobs", body={"id": "files", "poolInfo": {"poolId": "files"}})
    raw.send("POST", "/jobs/files/tasks", body={"id": "t", "commandLine": "/bin/sh -c 'echo 0123456789'"})
    wait_for(lambda: raw.send("GET", "/jobs/files/tasks/t").json["state"] == "completed", "t to complete", 60)
    whole = raw.send("GET", "/jobs/files/tasks/t/files/stdout.txt")
    assert (whole.status, whole.body) == (200, b"0123456789\n")
    assert whole.headers["ocp-batch-file-isdirectory"] == "false"
    part = raw.send("GET", "/jobs/files/tasks/t/files/stdout.txt", headers={"ocp-range": "bytes=2-4"})
    assert part.body == b"234"
    listed = raw.send("GET", "/jobs/files/tasks/t/files")
    sizes = {f["name"]: f["properties"]["contentLength"] for f in listed.json["value"]}
    assert sizes == {"stdout.txt": 11, "stderr.txt": 0}
    raw.send("DELETE", "/jobs/files")
    raw.send("DELETE", "/pools/files")


def test_https_with_a_certificate_and_azure_s_sdk(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    suite = LocalSuite(tmp_path / "state", gateway_port=0, pool_manager_port=0, scheduler_port=0,
                       stager_port=0, timing=FAST,
                       rest=RestConfig(address="127.0.0.1:0", tls_cert_file=str(cert), tls_key_file=str(key)))
    with suite:
        assert suite.rest_endpoint.startswith("https://127.0.0.1:")
        cc = suite.client_config
        client = BatchClient(suite.rest_endpoint, AzureNamedKeyCredential(cc.account, cc.key),
                             connection_verify=str(cert))
        client.create_pool(models.BatchPoolCreateOptions(id="tls", vm_size="x", target_dedicated_nodes=0))
        assert [p.id for p in client.list_pools()] == ["tls"]
        plain = Raw(suite.rest_endpoint.replace("https", "http"), cc.account, cc.key)
        with pytest.raises(OSError):
            plain.send("GET", "/pools")


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "rest.crt", directory / "rest.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_plain_http_beyond_loopback_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="HTTPS"):
        RestConfig(address="0.0.0.0:50056").check()
    with pytest.raises(ValueError, match="together"):
        RestConfig(address="127.0.0.1:1", tls_cert_file="c").check()
    assert RestConfig(address="0.0.0.0:1", tls_cert_file="c", tls_key_file="k").check().endpoint == "https://0.0.0.0:1"
    assert RestConfig(address="[::1]:1").check().endpoint == "http://[::1]:1"
    assert RestConfig(address="").check().endpoint == ""


def test_each_account_sees_only_its_own(shared_suite: LocalSuite, raw: Raw, idle_job: str) -> None:
    key = create_account(shared_suite.config.db_path("gateway"), "team-b", shared_suite.config.secret)
    other = Raw(raw.endpoint, "team-b", key)
    assert other.send("GET", "/pools").json["value"] == []
    azure_error(other.send("GET", f"/jobs/{idle_job}"), 404, "JobNotFound")
    azure_error(other.send("GET", f"/jobs/{idle_job}/tasks/a03"), 404, "JobNotFound")
    azure_error(other.send("DELETE", "/pools/empty"), 404, "PoolNotFound")
    # Ids are per account: team-b's own "empty" pool is not the default account's.
    assert other.send("POST", "/pools", body={"id": "empty", "vmSize": "x"}).status == 201
    assert raw.send("GET", "/pools/empty").json["targetDedicatedNodes"] == 0
    # The account is the key's, whatever name is signed: team-b's key does not sign for default.
    azure_error(Raw(raw.endpoint, raw.account, key).send("GET", "/pools"), 403, "AuthenticationFailed")


def test_a_name_cannot_reach_past_its_segment(raw: Raw, idle_job: str) -> None:
    # %2F decodes inside the job's segment: it names no job, and reaches no task.
    answer = raw.send("GET", f"/jobs/{idle_job}/tasks/b00".replace("/tasks/", "%2Ftasks%2F"))
    assert answer.status in (400, 404) and "commandLine" not in answer.body.decode()


def test_content_md5_is_checked_when_sent(raw: Raw) -> None:
    body = {"id": "md5", "poolInfo": {"poolId": "empty"}}
    data = json.dumps(body).encode()
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    azure_error(raw.send("POST", "/jobs", body=body, headers={"Content-MD5": wrong}), 400, "Md5Mismatch")
    assert raw.send("POST", "/jobs", body=body, headers={"Content-MD5": good}).status == 201
    assert raw.send("DELETE", "/jobs/md5").status == 202
