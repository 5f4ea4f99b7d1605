"""What ``llamavis cache`` does to the result store: measure it and empty it.

Unlike ``ResultCache``, which turns itself off on any fault so that a batch goes on,
these report a damaged or unreadable store as a ``ConfigError``: here the user asked
about the file itself.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamavis.errors import ConfigError
from llamavis.store.cache import SCHEMA, default_path
from llamavis.store.paths import private_store


@dataclass(frozen=True)
class CacheStats:
    """What ``llamavis cache stats`` reports about the store."""

    path: Path
    entries: int
    size_bytes: int  # the database file and its write-ahead log
    oldest: float | None  # epoch seconds of the oldest stored result
    newest: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "entries": self.entries, "size_bytes": self.size_bytes,
            "oldest": _iso(self.oldest), "newest": _iso(self.newest),
        }  # fmt: skip


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


def _files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in _files(path)[:2] if p.exists())


def _open(path: Path) -> sqlite3.Connection:
    """A connection for the cache command; any database fault is one ConfigError."""
    private_store(path)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        conn.execute(SCHEMA)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _unusable(path, exc) from None
    return conn


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> ConfigError:
    return ConfigError(f"result cache {path} is unusable ({exc})",
                       hint="`llamavis cache clear` deletes it and starts a fresh one")


def stats(path: Path | None = None) -> CacheStats:
    """Entries, size on disk and the oldest and newest result; a missing store is empty."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        return CacheStats(path, 0, 0, None, None)
    conn = _open(path)
    try:
        count, oldest, newest = conn.execute(
            "SELECT COUNT(*), MIN(created), MAX(created) FROM results"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    finally:
        conn.close()
    return CacheStats(path, count, _size(path), oldest, newest)


def _cutoff(older_than_days: float | None, now: float) -> float:
    return now - older_than_days * 86400 if older_than_days is not None else float("inf")


def count_older(older_than_days: float | None = None, path: Path | None = None,
                *, now: float | None = None) -> int:
    """How many results ``clear`` would delete (all of them when no age is given)."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        return 0
    cutoff = _cutoff(older_than_days, time.time() if now is None else now)
    conn = _open(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM results WHERE created < ?",
                                (cutoff,)).fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    finally:
        conn.close()


def clear(older_than_days: float | None = None, path: Path | None = None,
          *, now: float | None = None) -> int:
    """Delete stored results (those older than the given days, else all); return how many.

    Clearing everything also gives the disk space back; a store too damaged to open is
    deleted whole, since nothing in it can be read anyway.
    """
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        return 0
    cutoff = _cutoff(older_than_days, time.time() if now is None else now)
    try:
        conn = _open(path)
    except ConfigError:
        if older_than_days is not None:
            raise
        for file in _files(path):
            file.unlink(missing_ok=True)
        return 0
    try:
        deleted = conn.execute("DELETE FROM results WHERE created < ?", (cutoff,)).rowcount
        if older_than_days is None:
            conn.execute("VACUUM")  # give the space back: the file does not shrink by itself
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    finally:
        conn.close()
    return int(deleted)
