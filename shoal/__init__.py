"""Shoal's Python client: `from shoal import Client`.

The generated gRPC stubs live in `shoal.v1` (public API), `shoal.agent.v1` and
`shoal.internal.v1`; `shoal.cli` is the `shoal` command.
"""

from shoal.client import Client, ClientConfig, TaskSpec
from shoal.errors import ClientConfigError, ShoalError, StatusCode, WaitTimeoutError
from shoal.listing import Listing, Page
from shoal.specs import NodeCommand, OutputFile, PackageReference, ResourceFile

__all__ = [
    "Client",
    "ClientConfig",
    "ClientConfigError",
    "Listing",
    "NodeCommand",
    "OutputFile",
    "Page",
    "PackageReference",
    "ResourceFile",
    "ShoalError",
    "StatusCode",
    "TaskSpec",
    "WaitTimeoutError",
]
