"""A peer's failed call as the caller's error (services.common.rpc.peer_error): one mapping
for every service's clients of the others."""

from __future__ import annotations

import grpc

from services.common.errors import Code, ShoalError, not_found
from services.common.rpc import POOL_MANAGER, STORAGE_STAGER, peer_error, to_status


def failed_call(err: ShoalError) -> grpc.aio.AioRpcError:
    """The error a client sees when a Shoal service raised `err`."""
    s = to_status(err)
    return grpc.aio.AioRpcError(s.code, grpc.aio.Metadata(),
                                grpc.aio.Metadata(*s.trailing_metadata), details=s.details)


def unreachable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                grpc.aio.Metadata(), details="failed to connect to all addresses")


def test_a_verdict_is_relayed_with_the_peers_reason_and_message() -> None:
    err = peer_error(failed_call(not_found("pool", "p1")), POOL_MANAGER, "cannot check the pool")
    assert (err.code, err.reason, err.message) == (Code.NOT_FOUND, "POOL_NOT_FOUND", "pool 'p1' not found")
    bare = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                details="gone")
    assert peer_error(bare, POOL_MANAGER).reason == "NOT_FOUND"


def test_a_peer_that_cannot_serve_is_unavailable_by_its_name() -> None:
    err = peer_error(unreachable(), POOL_MANAGER, "cannot check the pool")
    assert (err.code, err.reason) == (Code.UNAVAILABLE, "POOL_MANAGER_UNAVAILABLE")
    assert err.message == ("cannot check the pool: the pool-manager answered UNAVAILABLE: "
                           "failed to connect to all addresses")
    # A wrong service token is the cluster's trouble, not the caller's: never relayed.
    token = failed_call(ShoalError(Code.UNAUTHENTICATED, "UNAUTHENTICATED", "wrong token"))
    assert peer_error(token, STORAGE_STAGER).reason == "STORAGE_UNAVAILABLE"


def test_a_call_can_pass_on_fewer_verdicts() -> None:
    err = peer_error(failed_call(not_found("log", "x")), STORAGE_STAGER, relay=())
    assert (err.code, err.reason) == (Code.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    assert err.message == "the storage-stager answered NOT_FOUND: log 'x' not found"
