"""Where and when results were made: timestamps and package versions for metadata."""

from __future__ import annotations

import datetime
from importlib import metadata


def utc_now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions(*packages: str) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed)."""
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found
