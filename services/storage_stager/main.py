"""The storage-stager process. Storage itself (backends, objects, staging grants) is the next
piece of work; today the process owns its SQLite file and answers health checks, so the
suite has its final shape and `shoal up` supervises all four services."""

from __future__ import annotations

import structlog

from services.common.config import ClusterConfig
from services.common.db import open_db
from services.common.process import run_service
from services.common.rpc import ServiceHost, ServiceInterceptor, wait_for_signal

log = structlog.get_logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"""


async def serve(config: ClusterConfig) -> None:
    db = await open_db(config.db_path("storage-stager"), SCHEMA)
    host = ServiceHost(config.storage_stager_address, [ServiceInterceptor(config.service_token)])
    await host.start()
    log.info("storage-stager listening", address=config.storage_stager_address, port=host.port)
    await wait_for_signal()
    await host.stop(grace=2.0)
    await db.close()
    log.info("storage-stager stopped")


def main() -> None:
    run_service("storage-stager", "services.storage_stager", serve)
