"""The Shoal node agent: registers the node, keeps one stream to the scheduler, runs the
attempts it is assigned and reports their results from a durable outbox."""

from importlib import metadata

try:
    __version__ = metadata.version("shoal")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
