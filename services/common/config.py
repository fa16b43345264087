"""Moved to shoal/cluster_config.py, where `shoal up` can write the file without importing the
services. Kept for services/job_scheduler (and tests/scheduler) until their rewrite imports it
from there; new code imports shoal.cluster_config."""

from shoal.cluster_config import STORAGE_BACKENDS, ClusterConfig, SchedulerTiming, StorageConfig

__all__ = ["STORAGE_BACKENDS", "ClusterConfig", "SchedulerTiming", "StorageConfig"]
