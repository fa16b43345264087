"""The storage-stager's Prometheus metrics: staging grants, their bytes and refusals, and the
local backend's signed-URL traffic, read from the stager's tally when Prometheus scrapes.

On the s3 backend agents move bytes to and from S3 directly: the stager sees only what it
granted (objects and their sizes for downloads; upload URLs). The local backend's own HTTP
server also counts the bytes it actually sent and received. Names and labels are listed in
deploy/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from services.common.metrics import counter_family
from services.storage_stager.model import StagingTally


class StagingCollector(Collector):
    def __init__(self, tally: StagingTally, backend: str) -> None:
        self._tally = tally
        self._backend = backend

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        t = self._tally
        yield counter_family("shoal_staging_objects", "Objects granted to agents, by direction "
                             "(download: resource files and packages; upload: outputs and logs).",
                             ["direction"], {("download",): t.download_objects,
                                             ("upload",): t.upload_urls})
        yield counter_family("shoal_staging_granted_bytes", "Sizes of the objects granted for "
                             "download.", [], {(): t.download_bytes})
        yield counter_family("shoal_staging_errors", "Staging requests refused, by failure "
                             "code.", ["code"], {(c,): n for c, n in sorted(t.failures.items())})
        if self._backend == "local":
            yield counter_family("shoal_storage_http_bytes", "Bytes the local backend's "
                                 "signed-URL server moved.", ["direction"],
                                 {("sent",): t.http_sent_bytes,
                                  ("received",): t.http_received_bytes})
            yield counter_family("shoal_storage_http_requests", "Requests to the local "
                                 "backend's signed-URL server, by method and HTTP status (0: "
                                 "the client went away).", ["method", "status"],
                                 {(m, str(s)): n for (m, s), n in sorted(t.http_requests.items())})
