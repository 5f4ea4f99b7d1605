"""bench/run.py's report goes where it belongs: only a full run rewrites BENCHMARKS.md.

The benchmark itself is never run here (it takes minutes and measures time); this tests
the code that decides where its report is written.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    spec.loader.exec_module(module)
    sys.path[:] = path  # run.py puts bench/ first on the path: its modules are not the tests'
    return module


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "BENCHMARKS.md").write_text("# committed figures\n")
    return tmp_path


def test_a_quick_run_prints_its_report_and_leaves_benchmarks_md_as_committed(bench_run, repo):
    out = io.StringIO()
    written = bench_run.write_report("# quick figures\n", quick=True, output=None, repo=repo,
                                     stdout=out)
    assert written is None and out.getvalue() == "# quick figures\n"
    assert (repo / "BENCHMARKS.md").read_text() == "# committed figures\n"


def test_a_quick_run_writes_only_the_file_it_is_given(bench_run, repo):
    target = repo / "quick.md"
    written = bench_run.write_report("# quick figures\n", quick=True, output=target, repo=repo,
                                     stdout=io.StringIO())
    assert written == target and target.read_text() == "# quick figures\n"
    assert (repo / "BENCHMARKS.md").read_text() == "# committed figures\n"


def test_a_full_run_rewrites_benchmarks_md(bench_run, repo):
    written = bench_run.write_report("# full figures\n", quick=False, output=None, repo=repo,
                                     stdout=io.StringIO())
    assert written == repo / "BENCHMARKS.md"
    assert written.read_text() == "# full figures\n"
