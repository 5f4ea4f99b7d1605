"""The result cache is private: folder 0700, files 0600 (the installed command, a loopback server)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llamavis.store.cache import ResultCache

from fakeserver import FakeServer
from test_cli_tasks import EXAMPLES, llamavis


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_leaves_the_cache_folder_0700_and_its_files_0600(tmp_path):
    cache = Path(os.environ["LLAMAVIS_CACHE_DIR"])
    cache.mkdir(parents=True, mode=0o755)  # an existing, too open folder is tightened
    os.chmod(cache, 0o755)
    old = os.umask(0o022)
    try:
        with FakeServer("A red ball.") as server:
            proc = llamavis("ocr", str(EXAMPLES / "shapes.jpg"), "-P", "local",
                            "--base-url", server.url)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    files = sorted(cache.iterdir())
    assert any(f.name == "results.sqlite3" for f in files)
    assert mode(cache) == 0o700
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_existing_store_and_its_wal_are_tightened(tmp_path):
    path = tmp_path / "store" / "results.sqlite3"
    with ResultCache(path) as cache:
        cache.put("k", {"output": "secret text"})
    for file in path.parent.iterdir():
        os.chmod(file, 0o644)
    os.chmod(path.parent, 0o755)
    with ResultCache(path) as cache:
        assert cache.get("k") == {"output": "secret text"}
        files = list(path.parent.iterdir())
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert mode(path.parent) == 0o700
