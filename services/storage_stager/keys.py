"""Where things live in the backend, pure: the layout all parties agreed on.

    {account}/containers/{container}/{key}
    {account}/apps/{app_id_lower}/{version}
    {account}/logs/{job_id_lower}/{task_id_lower}/{attempt_id}/{stdout.txt|stderr.txt}

Every part is checked before it gets here (ids, container ids, safe keys), so a key can never
reach into another account's or container's space.
"""

from __future__ import annotations


def container_prefix(account: str, container: str) -> str:
    return f"{account}/containers/{container}/"


def object_key(account: str, container: str, key: str) -> str:
    return container_prefix(account, container) + key


def app_prefix(account: str, app_id: str) -> str:
    return f"{account}/apps/{app_id.lower()}/"


def version_key(account: str, app_id: str, version: str) -> str:
    return app_prefix(account, app_id) + version


def job_logs_prefix(account: str, job_id: str) -> str:
    return f"{account}/logs/{job_id.lower()}/"


def log_key(account: str, job_id: str, task_id: str, attempt_id: str, file: str) -> str:
    return f"{job_logs_prefix(account, job_id)}{task_id.lower()}/{attempt_id}/{file}"
