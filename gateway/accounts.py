"""The gateway's account store: accounts and their keys, in the gateway's SQLite file.

Admin paths (operators, tests) use these synchronous functions; the gateway process does its
own async look-ups against the same table with `SCHEMA`, `hash_key` and `derive_key`.

A key is not stored. It is derived: base64 of HMAC-SHA512 under the cluster secret of a random
nonce kept per account (a new nonce is a new key). Azure Batch's Shared Key scheme needs the
key itself to check a request's HMAC, and a derived key lets the gateway compute it when asked
while the database alone (nonce and SHA-256 of the key) gives nothing away. Bearer calls are
looked up by the SHA-256 of the key: keys carry 512 bits, so a slow password hash buys nothing
and would cost every request. The format is Azure's (base64 of 64 bytes), so Azure's SDKs take
a Shoal key as they take an Azure Batch account key. Changing the cluster secret changes every
key.

`shoal up` and `shoal account` run this module as a command, as they run the services, so
that the client package imports none of them:

    echo "$OLD_KEY" | python -m gateway.accounts ensure-key --config cluster.json --account default
    python -m gateway.accounts create|rotate-key|delete --config cluster.json --account NAME
    python -m gateway.accounts list --config cluster.json

ensure-key prints a key of the account: the one read from stdin if it still is one, else a new
one (the account is created, or its key replaced). Keys go through stdin and stdout, never
argv, which other users can read.

This is the only way to manage accounts, and it is local on purpose: it needs the cluster
file (readable by the service user only) and the gateway's database. The public API has no
admin method, so no account key, however obtained, can act on another account.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common.errors import Code, ShoalError, already_exists, not_found
from services.common.ids import check_id
from services.common.rpc import internal_metadata
from shoal.cluster_config import ClusterConfig
from shoal.v1 import (
    application_pb2,
    application_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    job_schedule_pb2,
    job_schedule_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    key_hash TEXT UNIQUE NOT NULL,
    create_time REAL NOT NULL,
    key_nonce TEXT
);
"""
# Files from before derived keys lack key_nonce; their accounts' keys stay valid for bearer
# calls, and the next ensure_key (`shoal up`) or rotate_key gives them a derived one.
_ADD_NONCE = "ALTER TABLE accounts ADD COLUMN key_nonce TEXT"

KEY_LABEL = b"shoal account key\0"


@dataclass(frozen=True)
class Account:
    name: str
    create_time: float
    """Unix seconds."""


def hash_key(key: str) -> str:
    """What is stored for a key, and what a presented key is looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def derive_key(secret: str, nonce: str) -> str:
    """The key of an account whose nonce is `nonce`, under the cluster secret (hex)."""
    mac = hmac.new(bytes.fromhex(secret), KEY_LABEL + nonce.encode(), hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def _new_key(secret: str) -> tuple[str, str]:
    nonce = secrets.token_hex(32)
    return derive_key(secret, nonce), nonce


def prepare(db_path: Path | str) -> None:
    """Create the table, or bring an older file's up to date (the gateway calls this at start)."""
    with _open(db_path):
        pass


@contextmanager
def _open(db_path: Path | str) -> Iterator[sqlite3.Connection]:
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0)
    try:
        # WAL like every service database, so this admin write never blocks the gateway's reads.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(accounts)")}
        if "key_nonce" not in columns:
            with conn:
                conn.execute(_ADD_NONCE)
        yield conn
    finally:
        conn.close()


def _find_name(conn: sqlite3.Connection, name: str) -> str | None:
    # Names are unique ignoring case, like every id in Shoal.
    row = conn.execute(
        "SELECT name FROM accounts WHERE name = ? COLLATE NOCASE", (name,)
    ).fetchone()
    return row[0] if row else None


def create_account(db_path: Path | str, name: str, secret: str) -> str:
    """Create an account; return its key. `secret` is the cluster's (ClusterConfig.secret)."""
    check_id(name, "account")
    key, nonce = _new_key(secret)
    with _open(db_path) as conn, conn:
        if _find_name(conn, name) is not None:
            raise already_exists("account", name)
        _insert(conn, name, key, nonce)
    return key


def rotate_key(db_path: Path | str, name: str, secret: str) -> str:
    """Give an account a new key; the old one stops working at once. Return the new key."""
    check_id(name, "account")
    key, nonce = _new_key(secret)
    with _open(db_path) as conn, conn:
        stored = _find_name(conn, name)
        if stored is None:
            raise not_found("account", name)
        _set_key(conn, stored, key, nonce)
    return key


def ensure_key(db_path: Path | str, name: str, secret: str, key: str = "") -> str:
    """A key of account `name`: `key` if it is its current derived key, else a new one,
    creating the account or replacing its key (what `shoal up` keeps in client.json)."""
    check_id(name, "account")
    with _open(db_path) as conn, conn:
        stored = _find_name(conn, name)
        if stored is not None and key:
            row = conn.execute(
                "SELECT key_nonce FROM accounts WHERE name = ? AND key_hash = ?",
                (stored, hash_key(key)),
            ).fetchone()
            if row is not None and row[0] and derive_key(secret, row[0]) == key:
                return key
        new, nonce = _new_key(secret)
        if stored is None:
            _insert(conn, name, new, nonce)
        else:
            _set_key(conn, stored, new, nonce)
    return new


def _insert(conn: sqlite3.Connection, name: str, key: str, nonce: str) -> None:
    conn.execute(
        "INSERT INTO accounts (name, key_hash, create_time, key_nonce) VALUES (?, ?, ?, ?)",
        (name, hash_key(key), time.time(), nonce),
    )


def _set_key(conn: sqlite3.Connection, stored_name: str, key: str, nonce: str) -> None:
    conn.execute(
        "UPDATE accounts SET key_hash = ?, key_nonce = ? WHERE name = ?",
        (hash_key(key), nonce, stored_name),
    )


def lookup(db: Path | str | sqlite3.Connection, key: str) -> Account | None:
    """The account a key belongs to, or None."""
    if not key:
        return None
    if isinstance(db, sqlite3.Connection):
        return _lookup(db, key)
    if not Path(db).exists():
        return None
    with _open(db) as conn:
        return _lookup(conn, key)


def _lookup(conn: sqlite3.Connection, key: str) -> Account | None:
    row = conn.execute(
        "SELECT name, create_time FROM accounts WHERE key_hash = ?", (hash_key(key),)
    ).fetchone()
    return Account(row[0], row[1]) if row else None


def list_accounts(db_path: Path | str) -> list[Account]:
    """All accounts, by name."""
    if not Path(db_path).exists():
        return []
    with _open(db_path) as conn:
        rows = conn.execute("SELECT name, create_time FROM accounts ORDER BY name").fetchall()
    return [Account(name, created) for name, created in rows]


def delete_account(db_path: Path | str, name: str) -> None:
    """Delete an account and its key (which stops working at once, and within the gateway's
    cache TTL for a gateway that has it cached). Callers check it owns nothing first."""
    check_id(name, "account")
    with _open(db_path) as conn, conn:
        stored = _find_name(conn, name)
        if stored is None:
            raise not_found("account", name)
        conn.execute("DELETE FROM accounts WHERE name = ?", (stored,))


def owned(config: ClusterConfig, name: str) -> list[str]:
    """What the account still has, as the services that own it answer (called as the
    gateway calls them, with the service token): ["pools", "jobs", ...]; empty when nothing.
    ShoalError(UNAVAILABLE) when a service cannot be asked."""
    checks = [
        ("pools", config.pool_manager_address, pool_pb2_grpc.PoolServiceStub, "ListPools",
         pool_pb2.ListPoolsRequest, "pools"),
        ("jobs", config.job_scheduler_address, job_pb2_grpc.JobServiceStub, "ListJobs",
         job_pb2.ListJobsRequest, "jobs"),
        ("job schedules", config.job_scheduler_address,
         job_schedule_pb2_grpc.JobScheduleServiceStub, "ListJobSchedules",
         job_schedule_pb2.ListJobSchedulesRequest, "job_schedules"),
        ("containers", config.storage_stager_address, storage_pb2_grpc.StorageServiceStub,
         "ListContainers", storage_pb2.ListContainersRequest, "containers"),
        ("applications", config.storage_stager_address,
         application_pb2_grpc.ApplicationServiceStub, "ListApplications",
         application_pb2.ListApplicationsRequest, "applications"),
    ]
    metadata = internal_metadata(config.service_token, name)
    found = []
    for kind, address, stub_type, method, request_type, items in checks:
        with grpc.insecure_channel(address) as channel:
            try:
                reply = getattr(stub_type(channel), method)(
                    request_type(page_size=1), metadata=metadata, timeout=10)
            except grpc.RpcError as e:
                raise ShoalError(Code.UNAVAILABLE, "SERVICE_UNAVAILABLE",
                                 f"cannot ask which {kind} account {name!r} has ({e.code().name} "
                                 f"from {address}): is Shoal running?") from None
        if getattr(reply, items):
            found.append(kind)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.accounts",
        description="Accounts and their keys, in the gateway's database. Run on the control "
        "plane's host by whoever can read the cluster file: there is no admin API, so no "
        "account's key can act on another account.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in [
        ("ensure-key", "print a key of the account: the one on stdin if valid, else a new one"),
        ("create", "create an account; print its key (shown once)"),
        ("rotate-key", "give an account a new key; print it (the old one stops working)"),
        ("delete", "delete an account that owns nothing any more"),
        ("list", "print the accounts as JSON lines"),
    ]:
        sub = commands.add_parser(command, help=text)
        sub.add_argument("--config", required=True, type=Path, help="the cluster file")
        if command != "list":
            sub.add_argument("--account", required=True)
    args = parser.parse_args(argv)
    try:
        config = ClusterConfig.load(args.config)
        db = config.db_path("gateway")
        if args.command == "ensure-key":
            print(ensure_key(db, args.account, config.secret, sys.stdin.read().strip()))
        elif args.command == "create":
            print(create_account(db, args.account, config.secret))
        elif args.command == "rotate-key":
            print(rotate_key(db, args.account, config.secret))
        elif args.command == "delete":
            check_id(args.account, "account")
            if _find(db, args.account) is None:
                raise not_found("account", args.account)
            left = owned(config, args.account)
            if left:
                raise ShoalError(
                    Code.FAILED_PRECONDITION, "ACCOUNT_NOT_EMPTY",
                    f"account {args.account!r} still has {', '.join(left)}: delete them first "
                    "(as the account: `shoal account keys rotate` gives you a key)")
            delete_account(db, args.account)
        else:
            for a in list_accounts(db):
                print(json.dumps({"name": a.name, "create_time": a.create_time}))
    except ShoalError as e:
        print(f"{e.message} [{e.reason}]", file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError, sqlite3.Error) as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 1
    return 0


def _find(db_path: Path | str, name: str) -> str | None:
    if not Path(db_path).exists():
        return None
    with _open(db_path) as conn:
        return _find_name(conn, name)


if __name__ == "__main__":
    sys.exit(main())
