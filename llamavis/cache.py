"""The content-addressed result store: one SQLite file shared by every llamavis process.

Several processes may share the file (``xargs -P``): it runs in WAL mode with a long
busy timeout, every write is one short autocommit statement, and a write that still
meets "database is locked" is retried a few times. A cache that cannot be opened or
read (corrupt file, unwritable directory) is reported once through ``on_warning`` and
then turned off for the rest of the run: a cache problem never fails a batch.

``stats`` and ``clear`` serve ``llamavis cache``: they report their problems as
``ConfigError`` instead, since there the user asked about the file itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from . import config
from .errors import ConfigError

log = logging.getLogger("llamavis.cache")

KEY_VERSION = 1  # bump to invalidate every stored key when the key recipe changes
_SECRET_PARTS = frozenset({"api_key", "apikey", "key", "token", "authorization", "password"})
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results ("
    "key TEXT PRIMARY KEY, result TEXT NOT NULL, created REAL NOT NULL)"
)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cache key part of type {type(value).__name__} is not JSON-serialisable")


def cache_key(**parts: Any) -> str:
    """The store key for one request: sha256 of the canonical JSON of its parts."""
    secret = _SECRET_PARTS.intersection(name.lower() for name in parts)
    if secret:
        raise ValueError(f"cache key must not include secrets: {sorted(secret)}")
    payload = {"v": KEY_VERSION, **parts}
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def default_path() -> Path:
    """Where the result store lives unless told otherwise."""
    return config.cache_dir() / "results.sqlite3"


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


class ResultCache:
    """Stored results by cache key; safe to share between processes and threads."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        on_warning: Callable[[str], None] | None = None,
        busy_timeout: float = 30.0,
        retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._warn_cb = on_warning
        self._busy_timeout = busy_timeout
        self._retries = retries
        self._sleep = sleep
        self._conn: sqlite3.Connection | None = None
        self._disabled = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False once the store proved unusable; every get then misses."""
        return not self._disabled

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result dict for ``key``, or None (miss, or cache unusable)."""
        row = self._run(
            lambda c: c.execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        )
        if not row:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Store one result dict under ``key``, committed at once (last write wins)."""
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO results (key, result, created) VALUES (?, ?, ?)",
                (key, text, time.time()),
            )
        )

    def close(self) -> None:
        """Close the connection; a later get/put opens it again."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run one statement with lock retries; on any database fault warn and turn off."""
        with self._lock:
            if self._disabled:
                return None
            for attempt in range(self._retries + 1):
                try:
                    return op(self._connect())
                except sqlite3.OperationalError as exc:
                    if not _is_locked(exc):
                        return self._disable(exc)
                    if attempt == self._retries:
                        self._warn(f"result cache {self.path} stayed locked ({exc}); skipped")
                        return None
                    self._sleep(min(0.05 * 2**attempt, 1.0))
                except (sqlite3.DatabaseError, OSError) as exc:
                    return self._disable(exc)
            return None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # a cache: durable enough in WAL
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _disable(self, exc: BaseException) -> None:
        self._disabled = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        corrupt = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.OperationalError
        )  # not a database; an OperationalError is about access (read-only, cannot open)
        advice = " (delete the file to start a fresh one)" if corrupt else ""
        self._warn(
            f"result cache {self.path} is unusable ({exc}); continuing without the cache{advice}"
        )

    def _warn(self, message: str) -> None:
        if self._warn_cb is not None:
            self._warn_cb(message)
        else:
            log.warning(message)


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
    from datetime import datetime, timezone

    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def _files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in _files(path)[:2] if p.exists())


def _open(path: Path) -> sqlite3.Connection:
    """A connection for the cache command; any database fault is one ConfigError."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        conn.execute(_SCHEMA)
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
