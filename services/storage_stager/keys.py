"""Where things live in the backend, pure: the layout all parties agreed on.

    {account}/containers/{container}.{uid}/{key}
    {account}/apps/{app_id_lower}.{uid}/{version}
    {account}/logs/{job_uid}/{task_id_lower}/{attempt_id}/{stdout.txt|stderr.txt}

Container and application ids are reused (delete, create again), so each incarnation has its
own random uid, kept in the stager's records, and its own space here. A write still in flight
when its container or application is deleted (a gRPC upload, a PUT through a URL granted
before) lands in the old incarnation's space: invisible to a new one with the same id. Such a
late object costs space only, since nothing lists or deletes an incarnation that is gone. Jobs
are told apart by the scheduler's job uid, which is never reused.

Containers and applications registered before uids existed have uid "" and keep the plain
`{container}` / `{app_id_lower}` form. Ids have no dots, so the forms never collide.

Every part is checked before it gets here (ids, container ids, safe keys), so a key can never
reach into another account's or container's space.
"""

from __future__ import annotations


def _incarnation(id_: str, uid: str) -> str:
    return f"{id_}.{uid}" if uid else id_


def container_prefix(account: str, container: str, uid: str) -> str:
    return f"{account}/containers/{_incarnation(container, uid)}/"


def object_key(account: str, container: str, uid: str, key: str) -> str:
    return container_prefix(account, container, uid) + key


def app_prefix(account: str, app_id: str, uid: str) -> str:
    return f"{account}/apps/{_incarnation(app_id.lower(), uid)}/"


def version_key(account: str, app_id: str, uid: str, version: str) -> str:
    return app_prefix(account, app_id, uid) + version


def job_logs_prefix(account: str, job_uid: str) -> str:
    return f"{account}/logs/{job_uid}/"


def log_key(account: str, job_uid: str, task_id: str, attempt_id: str, file: str) -> str:
    return f"{job_logs_prefix(account, job_uid)}{task_id.lower()}/{attempt_id}/{file}"
