"""The content-addressed result store: one SQLite file shared by every llamavis process.

Several processes may share the file (``xargs -P``): it runs in WAL mode with a long
busy timeout, every write is one short autocommit statement, and a write that still
meets "database is locked" is retried a few times. A cache that cannot be opened or
read (corrupt file, unwritable directory) is reported once through ``on_warning`` and
then turned off for the rest of the run: a cache problem never fails a batch.
(``llamavis.store.admin`` measures and empties the file for ``llamavis cache``.)
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from llamavis.store import paths as config

log = logging.getLogger("llamavis.store.cache")

KEY_VERSION = 1  # bump to invalidate every stored key when the key recipe changes
_SECRET_PARTS = frozenset({"api_key", "apikey", "key", "token", "authorization", "password"})
SCHEMA = (
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


def _insert(conn: sqlite3.Connection, rows: list[tuple[str, str, float]]) -> None:
    """Many results in one transaction: one commit, one write to the log, for the batch."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT OR REPLACE INTO results (key, result, created) VALUES (?, ?, ?)", rows
        )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _flush_at_exit(ref: weakref.ref[ResultCache]) -> None:
    cache = ref()
    if cache is not None:
        cache.flush()


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
        # put_soon's queue: key -> (result JSON, created), drained by one writer thread
        self._pending: dict[str, tuple[str, float]] = {}
        self._queue = threading.Condition()
        self._writer: threading.Thread | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        """False once the store proved unusable; every get then misses."""
        return not self._disabled

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result dict for ``key``, or None (miss, or cache unusable)."""
        with self._queue:
            row: Any = self._pending.get(key)
        if row is None:
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

    def put_soon(self, key: str, result: dict[str, Any]) -> None:
        """Store one result from a writer thread that commits whatever has queued up in one
        transaction: the caller (an event loop) neither waits on the disk nor hops threads.

        ``get`` sees the result at once; ``flush`` and ``close`` return once it is stored.
        """
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        with self._queue:
            self._pending[key] = (text, time.time())
            if self._writer is None:
                self._stopping = False
                self._writer = threading.Thread(target=self._drain, name="llamavis-cache",
                                                daemon=True)
                self._writer.start()
                atexit.register(_flush_at_exit, weakref.ref(self))  # a cache never closed
            self._queue.notify_all()

    def flush(self) -> None:
        """Wait until every result given to ``put_soon`` is stored (or skipped, with a warning)."""
        with self._queue:
            while self._pending and self._writer is not None:
                self._queue.wait()

    def close(self) -> None:
        """Store what is queued, stop the writer, close the connection; a later call reopens."""
        self.flush()
        with self._queue:
            writer, self._writer, self._stopping = self._writer, None, True
            self._queue.notify_all()
        if writer is not None:
            writer.join()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _drain(self) -> None:
        while True:
            with self._queue:
                while not self._pending and not self._stopping:
                    self._queue.wait()
                if not self._pending:
                    return
                batch = dict(self._pending)
            rows = [(key, text, created) for key, (text, created) in batch.items()]
            self._run(functools.partial(_insert, rows=rows))
            with self._queue:
                for key, row in batch.items():
                    if self._pending.get(key) is row:  # not replaced meanwhile
                        del self._pending[key]
                self._queue.notify_all()

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
        config.private_store(self.path)  # 0700 folder, 0600 files: answers about private images
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # a cache: durable enough in WAL
            conn.execute(SCHEMA)
        except BaseException:
            conn.close()
            raise
        config.private_store(self.path)  # the -wal and -shm WAL mode has just made
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
