"""Measure llamavis on this machine and write BENCHMARKS.md: `python bench/run.py [--quick]`.

Run it with the Python that has llamavis installed (e.g. /tmp/venv/bin/python). The full
run takes a few minutes and rewrites BENCHMARKS.md; --quick runs a reduced set in under a
minute and prints its report (or writes it to --output FILE), leaving BENCHMARKS.md as
committed: reduced-set figures are not the ones to publish.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parent.parent


def _check_environment() -> None:
    try:
        import httpx  # noqa: F401
        import PIL  # noqa: F401
        import typer  # noqa: F401

        import llamavis  # noqa: F401
    except ImportError as exc:
        sys.exit(f"bench: {exc.name} is not importable from {sys.executable}; run this with "
                 "the Python that has llamavis installed, e.g. /tmp/venv/bin/python bench/run.py")


def write_report(text: str, *, quick: bool, output: Path | None, repo: Path = REPO,
                 stdout: TextIO = sys.stdout) -> Path | None:
    """Write the report where it belongs and return that path; a quick run without
    ``output`` prints it instead, since only a full run may replace BENCHMARKS.md."""
    target = output if output is not None else (None if quick else repo / "BENCHMARKS.md")
    if target is None:
        stdout.write(text)
        return None
    target.write_text(text)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a reduced set, under a minute")
    parser.add_argument("--output", type=Path, default=None,
                        help="write the report here (default: BENCHMARKS.md for a full run; "
                             "a --quick run prints it)")
    parser.add_argument("--no-llm-install", action="store_true",
                        help="do not `pip install llm` into a throwaway venv for its --help time")
    args = parser.parse_args()
    _check_environment()

    import gen
    import report
    import sec_batch
    import sec_memory
    import sec_prep
    import sec_startup
    import sec_stream
    from common import Figure, Workdir
    from loopback import Loopback

    quick = args.quick
    work = Workdir()
    server = Loopback().start()
    machine = report.describe_machine(REPO)
    figures: list[Figure] = []
    extra: dict[str, list[str]] = {}
    durations: dict[str, float] = {}
    loads: dict[str, float] = {}
    failed = False

    def section(name: str, fn) -> None:
        nonlocal failed
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            figures.extend(fn())
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the rest
            failed = True
            traceback.print_exc()
            figures.append(Figure(name, f"{name}: the section failed", None, "",
                                  note=f"PROBLEM: {type(exc).__name__}: {exc}"))
        durations[name] = durations.get(name, 0.0) + time.monotonic() - start
        loads[name] = os.getloadavg()[0]  # the cores are shared: say how busy they were

    try:
        llm, llm_note = sec_startup.find_llm(install=not (quick or args.no_llm_install))
        startup_help: list[float] = []

        def startup() -> list:
            out = sec_startup.startup_figures(work, 5 if quick else 15, llm, llm_note)
            startup_help.append(out[0].value)
            lines = ["", "Heavy modules imported (`python -X importtime`), with who imports them:", ""]
            for args_ in (["--help"], ["caption", "--help"]):
                found = sec_startup.heavy_imports(work, args_)
                shown = "; ".join(found.values()) if found else "none"
                lines.append(f"- `llamavis {' '.join(args_)}`: {shown}")
            extra["startup"] = lines
            return out

        section("startup", startup)
        first_image = gen.batch_folder(work.root, 1, (640, 480)) / "img00000.jpg"

        def first_request() -> list:
            out = sec_startup.first_request_figures(server, work, first_image, 3 if quick else 9)
            args_ = ["caption", str(first_image), "--no-cache", "-P", "local", "--base-url",
                     server.url]
            found = sec_startup.heavy_imports(work, args_, sec_startup.ON_THE_WAY)
            extra.setdefault("startup", []).extend([
                "", "What a caption's first request waits for (`python -X importtime`, one run):",
                "", *[f"- {line}" for line in found.values()]])
            return out

        section("startup", first_request)

        def prepare() -> list:
            heic = sec_prep.heif_installed()
            images = gen.big_images(with_heic=heic)
            note = "" if heic else "pillow_heif is not installed: HEIC not measured"
            return sec_prep.prepare_figures(images, 2 if quick else 5, note)

        section("prepare", prepare)

        rounds = 5 if quick else 20
        photos = gen.batch_folder(work.root, max(rounds * 64, 300 if quick else 1000), (640, 480))
        httpx2 = sec_batch.httpx2_python(llm)
        section("batch", lambda: sec_batch.throughput(server, work, photos, rounds,
                                                      (64,) if quick else (16, 64), httpx2))
        missed = [f for f in figures if f.section == "batch" and f.met is False]
        if missed and not quick:
            lines = sec_batch.profile_top(server, work, sec_batch.subset(photos, 10 * 64), 64)
            extra["batch"] = ["", *[f"    {line}" for line in lines]]
        section("ceiling", lambda: sec_batch.ceiling(server, work, photos, 300 if quick else 1000))

        counts = (300, 1500) if quick else (1000, 10000)

        def memory() -> list:
            small = gen.batch_folder(work.root, counts[0], (64, 48), distinct=counts[0])
            large = gen.batch_folder(work.root, counts[1], (64, 48), distinct=counts[1])
            return sec_memory.memory_figures(server, work, small, large, counts)

        section("memory", memory)
        cached = 300 if quick else 1000
        folders = {"640x480": sec_batch.subset(photos, cached)}
        if not quick:
            folders["64x48"] = gen.batch_folder(work.root, cached, (64, 48), distinct=cached)
        section("cache", lambda: sec_memory.cache_figures(
            server, work, folders, cached, startup_help[0] if startup_help else None))
        image = sorted(photos.iterdir())[0]
        section("stream", lambda: sec_stream.stream_figures(server, work, image, 20 if quick else 40))

        import sec_local

        section("local", lambda: sec_local.local_figures(
            work, lambda n: gen.batch_folder(work.root, n, (64, 48), distinct=n), quick))
    finally:
        server.stop()
        work.cleanup()

    machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report.markdown(figures, machine, extra, quick, durations, loads)
    written = write_report(text, quick=quick, output=args.output)
    print(f"bench: wrote {written}" if written else "bench: a --quick run leaves BENCHMARKS.md "
          "as it is (--output FILE keeps its report)", file=sys.stderr)
    print()
    report.print_table(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
