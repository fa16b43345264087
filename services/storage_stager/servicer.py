"""The stager's grpc.aio servicers: convert the request, await the app, convert back.

Errors are ShoalErrors raised below; `services.common.rpc.ServiceInterceptor` maps them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TypeAlias

import grpc
from google.protobuf import empty_pb2

from services.common import rpc
from services.common.errors import ShoalError
from services.common.paging import PageRequest
from services.storage_stager import convert
from services.storage_stager.app import OBJECTS_PAGE, OBJECTS_PAGE_MAX, StorageApp
from services.storage_stager.staging import StagingApp
from shoal.internal.v1 import staging_pb2, staging_pb2_grpc
from shoal.v1 import application_pb2 as app_pb2
from shoal.v1 import application_pb2_grpc as app_grpc
from shoal.v1 import storage_pb2, storage_pb2_grpc, task_pb2

Ctx: TypeAlias = grpc.aio.ServicerContext


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, app: StorageApp) -> None:
        self._app = app

    async def CreateContainer(
        self, request: storage_pb2.CreateContainerRequest, context: Ctx
    ) -> storage_pb2.Container:
        c = await self._app.create_container(rpc.account(), request.container_id)
        return convert.container_to_proto(c)

    async def GetContainer(
        self, request: storage_pb2.GetContainerRequest, context: Ctx
    ) -> storage_pb2.Container:
        cid = convert.container_id(request.name, "name")
        return convert.container_to_proto(await self._app.get_container(rpc.account(), cid))

    async def ListContainers(
        self, request: storage_pb2.ListContainersRequest, context: Ctx
    ) -> storage_pb2.ListContainersResponse:
        want = PageRequest.of(request.page_size, request.page_token)
        rows, token = await self._app.list_containers(rpc.account(), want)
        return storage_pb2.ListContainersResponse(
            containers=[convert.container_to_proto(c) for c in rows], next_page_token=token
        )

    async def DeleteContainer(
        self, request: storage_pb2.DeleteContainerRequest, context: Ctx
    ) -> empty_pb2.Empty:
        cid = convert.container_id(request.name, "name")
        await self._app.delete_container(rpc.account(), cid)
        return empty_pb2.Empty()

    async def UploadObject(
        self, request_iterator: AsyncIterator[storage_pb2.UploadObjectRequest], context: Ctx
    ) -> storage_pb2.Object:
        stream = convert.UploadStream(request_iterator)
        try:
            header = await stream.header()
            cid = convert.container_id(header.container, "header.container")
            obj = await self._app.upload_object(
                rpc.account(), cid, header.key, stream.data(), stream.sha256
            )
        except ShoalError:
            await stream.drain()
            raise
        return convert.object_to_proto(obj)

    async def DownloadObject(
        self, request: storage_pb2.DownloadObjectRequest, context: Ctx
    ) -> AsyncIterator[storage_pb2.DownloadObjectResponse]:
        cid = convert.container_id(request.container, "container")
        obj, chunks = await self._app.download_object(
            rpc.account(), cid, request.key, request.offset
        )
        # aclosing: a client that hangs up mid-stream must not leave the blob or S3 body open.
        async with aclosing(chunks):
            yield storage_pb2.DownloadObjectResponse(object=convert.object_to_proto(obj))
            async for chunk in chunks:
                yield storage_pb2.DownloadObjectResponse(data=chunk)

    async def GetObject(
        self, request: storage_pb2.GetObjectRequest, context: Ctx
    ) -> storage_pb2.Object:
        cid = convert.container_id(request.container, "container")
        return convert.object_to_proto(
            await self._app.get_object(rpc.account(), cid, request.key)
        )

    async def ListObjects(
        self, request: storage_pb2.ListObjectsRequest, context: Ctx
    ) -> storage_pb2.ListObjectsResponse:
        cid = convert.container_id(request.container, "container")
        want = PageRequest.of(request.page_size, request.page_token, default=OBJECTS_PAGE,
                              maximum=OBJECTS_PAGE_MAX)
        rows, token = await self._app.list_objects(rpc.account(), cid, request.prefix, want)
        return storage_pb2.ListObjectsResponse(
            objects=[convert.object_to_proto(o) for o in rows], next_page_token=token
        )

    async def DeleteObject(
        self, request: storage_pb2.DeleteObjectRequest, context: Ctx
    ) -> empty_pb2.Empty:
        cid = convert.container_id(request.container, "container")
        await self._app.delete_object(rpc.account(), cid, request.key)
        return empty_pb2.Empty()


class ApplicationServicer(app_grpc.ApplicationServiceServicer):
    def __init__(self, app: StorageApp) -> None:
        self._app = app

    async def CreateApplication(
        self, request: app_pb2.CreateApplicationRequest, context: Ctx
    ) -> app_pb2.Application:
        a = request.application
        created = await self._app.create_application(
            rpc.account(), request.application_id, a.display_name, a.default_version
        )
        return convert.application_to_proto(created)

    async def GetApplication(
        self, request: app_pb2.GetApplicationRequest, context: Ctx
    ) -> app_pb2.Application:
        app_id = convert.application_id(request.name)
        return convert.application_to_proto(await self._app.get_application(rpc.account(), app_id))

    async def ListApplications(
        self, request: app_pb2.ListApplicationsRequest, context: Ctx
    ) -> app_pb2.ListApplicationsResponse:
        want = PageRequest.of(request.page_size, request.page_token)
        rows, token = await self._app.list_applications(rpc.account(), want)
        return app_pb2.ListApplicationsResponse(
            applications=[convert.application_to_proto(a) for a in rows], next_page_token=token
        )

    async def UpdateApplication(
        self, request: app_pb2.UpdateApplicationRequest, context: Ctx
    ) -> app_pb2.Application:
        app_id = convert.application_id(request.name)
        updated = await self._app.update_application(
            rpc.account(), app_id,
            request.display_name if request.HasField("display_name") else None,
            request.default_version if request.HasField("default_version") else None,
        )
        return convert.application_to_proto(updated)

    async def DeleteApplication(
        self, request: app_pb2.DeleteApplicationRequest, context: Ctx
    ) -> empty_pb2.Empty:
        await self._app.delete_application(rpc.account(), convert.application_id(request.name))
        return empty_pb2.Empty()

    async def UploadApplicationVersion(
        self, request_iterator: AsyncIterator[app_pb2.UploadApplicationVersionRequest],
        context: Ctx,
    ) -> app_pb2.ApplicationVersion:
        stream = convert.UploadStream(request_iterator)
        try:
            header = await stream.header()
            app_id = convert.application_id(header.parent, "header.parent")
            fmt = convert.archive_format(header.format)
            v = await self._app.upload_version(
                rpc.account(), app_id, header.version_id, fmt, stream.data(), stream.sha256
            )
        except ShoalError:
            await stream.drain()
            raise
        return convert.version_to_proto(v)

    async def ListApplicationVersions(
        self, request: app_pb2.ListApplicationVersionsRequest, context: Ctx
    ) -> app_pb2.ListApplicationVersionsResponse:
        app_id = convert.application_id(request.parent, "parent")
        want = PageRequest.of(request.page_size, request.page_token)
        rows, token = await self._app.list_versions(rpc.account(), app_id, want)
        return app_pb2.ListApplicationVersionsResponse(
            versions=[convert.version_to_proto(v) for v in rows], next_page_token=token
        )

    async def DeleteApplicationVersion(
        self, request: app_pb2.DeleteApplicationVersionRequest, context: Ctx
    ) -> empty_pb2.Empty:
        app_id, version = convert.version_ids(request.name)
        await self._app.delete_version(rpc.account(), app_id, version)
        return empty_pb2.Empty()


class StagingServicer(staging_pb2_grpc.StagingServiceServicer):
    """Internal: the scheduler and the pool-manager call it, never the gateway."""

    def __init__(self, app: StagingApp) -> None:
        self._app = app

    async def GrantDownloads(
        self, request: staging_pb2.GrantDownloadsRequest, context: Ctx
    ) -> staging_pb2.GrantDownloadsResponse:
        grants = await self._app.grant_downloads(
            rpc.account(), [convert.download_spec(s) for s in request.specs]
        )
        return staging_pb2.GrantDownloadsResponse(
            grants=[convert.download_grant_to_proto(g) for g in grants]
        )

    async def GrantUploads(
        self, request: staging_pb2.GrantUploadsRequest, context: Ctx
    ) -> staging_pb2.GrantUploadsResponse:
        grants = await self._app.grant_uploads(
            rpc.account(), [convert.upload_spec(s) for s in request.specs]
        )
        return staging_pb2.GrantUploadsResponse(
            grants=[convert.upload_grant_to_proto(g) for g in grants]
        )

    async def ReadTaskLog(
        self, request: staging_pb2.ReadTaskLogRequest, context: Ctx
    ) -> AsyncIterator[task_pb2.TaskFileChunk]:
        pieces = await self._app.read_task_log(
            rpc.account(), request.job_uid, request.job_id, request.task_id, request.attempt_id, request.file,
            request.offset,
        )
        async with aclosing(pieces):
            async for offset, data in pieces:
                yield task_pb2.TaskFileChunk(data=data, offset=offset)

    async def DeleteJobLogs(
        self, request: staging_pb2.DeleteJobLogsRequest, context: Ctx
    ) -> empty_pb2.Empty:
        await self._app.delete_job_logs(rpc.account(), request.job_uid)
        return empty_pb2.Empty()
