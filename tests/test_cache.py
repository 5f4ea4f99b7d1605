"""The result store: round trips, keys, sharing between processes, damaged files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llamavis.store.cache import ResultCache, cache_key
from llamavis.types import GenParams, Result, Usage


def _result(image: str = "cat.jpg") -> dict:
    return Result(image=image, task="caption", output="a cat", raw="a cat",
                  usage=Usage(10, 2, 0.001), attempts=1).to_dict()  # fmt: skip


def test_put_then_get_returns_the_same_result_dict(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "r.sqlite3")
    key = cache_key(image="abc", task="caption")
    cache.put(key, _result())
    assert cache.get(key) == _result()
    assert cache.get(cache_key(image="abc", task="ocr")) is None
    cache.close()
    assert ResultCache(tmp_path / "r.sqlite3").get(key) == _result()


def test_default_store_is_created_lazily_in_the_cache_dir(isolated_user_dirs: Path) -> None:
    cache = ResultCache()
    path = isolated_user_dirs / "cache" / "results.sqlite3"
    assert cache.path == path and not path.exists()
    cache.put("k", _result())
    assert path.exists() and cache.get("k") == _result()


def test_put_replaces_an_earlier_result(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "r.sqlite3")
    cache.put("k", _result("a"))
    cache.put("k", _result("b"))
    assert cache.get("k")["image"] == "b"


def test_cache_key_is_canonical_and_sensitive_to_every_part() -> None:
    a = cache_key(image="sha", task="vqa", params={"temperature": 0, "max_tokens": 5})
    b = cache_key(params={"max_tokens": 5, "temperature": 0}, task="vqa", image="sha")
    assert a == b and len(a) == 64
    assert a != cache_key(image="sha", task="vqa", params={"temperature": 0, "max_tokens": 6})
    assert cache_key(params=GenParams(max_tokens=5)) == cache_key(params={"max_tokens": 5})


@pytest.mark.parametrize("name", ["api_key", "API_KEY", "token", "authorization"])
def test_cache_key_refuses_secrets(name: str) -> None:
    with pytest.raises(ValueError, match="secrets"):
        cache_key(image="sha", **{name: "sk-secret"})


_WRITER = textwrap.dedent(
    """
    import sys
    from llamavis.store.cache import ResultCache
    warnings = []
    cache = ResultCache(sys.argv[1], on_warning=warnings.append)
    for i in range(200):
        (cache.put if i % 2 else cache.put_soon)(f"{sys.argv[2]}-{i}", {"image": f"{sys.argv[2]}-{i}.jpg", "output": i})
        assert cache.get(f"{sys.argv[2]}-{i}")["output"] == i
    cache.close()
    if warnings:
        sys.exit("warnings: " + "; ".join(warnings))
    """
)


@pytest.mark.subprocess
def test_two_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name], stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    cache = ResultCache(path)
    for name in ("a", "b"):
        for i in range(200):
            assert cache.get(f"{name}-{i}") == {"image": f"{name}-{i}.jpg", "output": i}


def test_corrupt_file_warns_once_and_runs_without_cache(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    path.write_bytes(b"this is not a database\n" * 100)
    warnings: list[str] = []
    cache = ResultCache(path, on_warning=warnings.append)
    assert cache.get("k") is None
    cache.put("k", _result())
    assert cache.get("k") is None
    assert len(warnings) == 1 and "unusable" in warnings[0] and not cache.enabled


def test_unwritable_location_warns_and_runs_without_cache(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    warnings: list[str] = []
    cache = ResultCache(tmp_path / "file" / "r.sqlite3", on_warning=warnings.append)
    cache.put("k", _result())
    assert cache.get("k") is None and len(warnings) == 1


def test_a_write_that_stays_locked_is_retried_then_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    ResultCache(path).put("warm", _result())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    warnings: list[str] = []
    sleeps: list[float] = []
    cache = ResultCache(path, on_warning=warnings.append, busy_timeout=0.01, retries=2,
                        sleep=sleeps.append)  # fmt: skip
    cache.put("k", _result())
    assert len(sleeps) == 2 and "locked" in warnings[0] and cache.enabled
    assert cache.get("warm") == _result()  # WAL: readers are not blocked by the writer
    holder.execute("COMMIT")
    cache.put("k", _result())
    assert cache.get("k") == _result()


def test_only_a_corrupt_file_is_worth_deleting(tmp_path: Path) -> None:
    corrupt = tmp_path / "r.sqlite3"
    corrupt.write_bytes(b"this is not a database\n" * 100)
    (tmp_path / "file").write_text("x")
    warned: dict[str, list[str]] = {"corrupt": [], "unreachable": []}
    ResultCache(corrupt, on_warning=warned["corrupt"].append).get("k")
    ResultCache(tmp_path / "file" / "r.sqlite3", on_warning=warned["unreachable"].append).get("k")
    assert "delete the file" in warned["corrupt"][0]
    assert "delete the file" not in warned["unreachable"][0]


def test_put_soon_is_seen_at_once_and_on_disk_after_close(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "r.sqlite3")
    for i in range(300):
        cache.put_soon(f"k{i}", _result(f"{i}.jpg"))
    assert cache.get("k299") == _result("299.jpg")  # queued or written: either way found
    cache.close()
    again = ResultCache(tmp_path / "r.sqlite3")
    assert all(again.get(f"k{i}") == _result(f"{i}.jpg") for i in range(300))


_EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import sys
    from llamavis.store.cache import ResultCache
    cache = ResultCache(sys.argv[1])
    for i in range(500):
        cache.put_soon(f"k{i}", {"image": f"{i}.jpg"})
    """
)


@pytest.mark.subprocess
def test_results_queued_by_put_soon_are_stored_even_if_the_cache_is_never_closed(tmp_path):
    path = tmp_path / "r.sqlite3"
    subprocess.run([sys.executable, "-c", _EXIT_WITHOUT_CLOSE, str(path)], check=True, timeout=60)
    cache = ResultCache(path)
    assert [cache.get(f"k{i}") for i in (0, 499)] == [{"image": "0.jpg"}, {"image": "499.jpg"}]


def test_put_soon_into_a_corrupt_file_warns_once_and_loses_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    path.write_bytes(b"this is not a database\n" * 100)
    warnings: list[str] = []
    cache = ResultCache(path, on_warning=warnings.append)
    cache.put_soon("k", _result())
    cache.close()  # returns: the writer gave up on the file instead of hanging
    assert len(warnings) == 1 and "unusable" in warnings[0] and not cache.enabled
