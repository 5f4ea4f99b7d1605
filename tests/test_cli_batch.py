"""Batches over image folders: the installed command against a loopback server.

Each image is a distinct 32x32 JPEG (sent as it is, being small enough); the server
answers with a hash of the image it received, so every line can be checked against
its own image. Delays are on the server's side; the tests themselves never sleep.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import random
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from fakeserver import HOLD_S, FakeServer, Reply
from support.cli import invoke, start

pytestmark = pytest.mark.subprocess

KEY = "sk-test-SENTINEL-batch"
LOCAL = ("-P", "local")


# -- helpers -----------------------------------------------------------------


def make_images(directory: Path, count: int, first: int = 0, ext: str = "jpg") -> list[Path]:
    """Distinct small JPEGs (seeded noise): every image gets its own content hash."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + count):
        noise = random.Random(i).randbytes(32 * 32 * 3)
        path = directory / f"img{i:04d}.{ext}"
        Image.frombytes("RGB", (32, 32), noise).save(path, format="JPEG", quality=85)
        paths.append(path)
    return paths


def sidecar_files(out: Path) -> list[Path]:
    """Every file in an --output-dir but the record of what each sidecar answers."""
    return [p for p in out.iterdir() if p.name != ".llamavis-sidecars.jsonl"]


def answer_for(data: bytes) -> str:
    return "img-" + hashlib.sha256(data).hexdigest()[:16]


def expected(path: Path | str) -> str:
    """The answer the echo server gives for this file (small JPEGs are sent unchanged)."""
    return answer_for(Path(path).read_bytes())


def sent_image(body: dict[str, Any]) -> bytes:
    parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
    url = next(p["image_url"]["url"] for p in parts if p.get("type") == "image_url")
    return base64.b64decode(url.split(",", 1)[1])


def echo(delay: float = 0.0, cost: float | None = None):
    """A reply function answering each request with the hash of the image it carries."""

    def reply(body: dict[str, Any]) -> Reply:
        usage = (
            None
            if cost is None
            else {"prompt_tokens": 1610, "completion_tokens": 5, "total_tokens": 1615, "cost": cost}
        )
        return Reply(text=answer_for(sent_image(body)), delay=delay, usage=usage)

    return reply


def serve(reply: Any) -> FakeServer:
    """A FakeServer tuned for many concurrent connections (no Nagle stalls, deep backlog)."""
    server = FakeServer(reply)
    server.httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    server.httpd.socket.listen(128)
    return server


def asked(server: FakeServer, since: int = 0) -> list[str]:
    """The answers the server gave, one per request received (identifies each image)."""
    return [answer_for(sent_image(body)) for body in server.requests[since:]]


def llamavis(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the command in this process; stdin is empty unless ``input`` is given."""
    return invoke(*args, input=input or b"", env=env)


def path_list(paths: list[Path], sep: str = "\n") -> bytes:
    return sep.join(str(p) for p in paths).encode() + sep.encode()


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_own_answers(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        assert doc["error"] is None, doc
        assert doc["output"] == expected(doc["image"]), doc["image"]


class LineReader:
    """Collects a process's stdout lines on a thread; waits with bounded timeouts."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def take(self, count: int, timeout: float = 120) -> list[bytes]:
        got = []
        while len(got) < count:
            line = self.lines.get(timeout=timeout)
            assert line is not None, f"output ended after {len(got)} lines"
            got.append(line)
        return got

    def rest(self, timeout: float = 120) -> list[bytes]:
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        got = []
        while (line := self.lines.get_nowait()) is not None:
            got.append(line)
        return got


@pytest.fixture(scope="module")
def images400(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("batch400"), 400)


# -- the "must show" ----------------------------------------------------


def gathered(reply: Any, count: int) -> Any:
    """``reply``, but the first ``count`` requests wait until ``count`` are in flight at once
    (or HOLD_S passes): concurrency is shown by lock-step, whatever the machine's speed."""
    together = threading.Barrier(count, timeout=HOLD_S)
    seen = iter(range(count))

    def answer(body: dict[str, Any]) -> Any:
        if next(seen, None) is not None:  # fewer ever at once: max_in_flight tells
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait()
        return reply(body)

    return answer


def test_400_piped_paths_give_400_own_answers_with_at_most_j_in_flight_and_rerun_is_cached(
    images400,
):
    with serve(gathered(echo(), 16)) as server:
        args = ("caption", "-j", "16", "--jsonl", *LOCAL, "--base-url", server.url)
        first = llamavis(*args, input=path_list(images400))
        assert first.returncode == 0, first.stderr
        docs = jsonl(first.stdout)
        assert len(docs) == 400
        assert sorted(d["image"] for d in docs) == sorted(str(p) for p in images400)
        assert_own_answers(docs)
        assert all(d["cached"] is False and d["attempts"] == 1 for d in docs)
        assert len(server.requests) == 400
        assert sorted(asked(server)) == sorted(expected(p) for p in images400)
        assert server.max_in_flight == 16  # the concurrency is real, and bounded by -j

        again = llamavis(*args, input=path_list(images400))
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 400  # not one more request
    redo = jsonl(again.stdout)
    assert len(redo) == 400
    assert_own_answers(redo)
    assert all(d["cached"] is True and d["attempts"] == 0 for d in redo)


def test_interrupted_run_exits_130_and_rerun_asks_only_for_the_unfinished(images400):
    args = ("caption", "-j", "4", "--jsonl", *LOCAL)
    answered, rest_held = iter(range(60)), threading.Event()
    answer = echo()

    def reply(body: dict[str, Any]) -> Reply:  # 60 answers, then none until the interrupt
        return answer(body) if next(answered, None) is not None else \
            Reply(text=answer(body).text, hold=rest_held)

    with serve(reply) as server:
        proc = start(*args, "--base-url", server.url)
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(path_list(images400))
        proc.stdin.close()
        reader = LineReader(proc)
        before = reader.take(40)
        proc.send_signal(signal.SIGINT)
        rest_held.set()  # whether the requests in flight are cancelled or finished first
        assert proc.wait(timeout=120) == 130
        after = reader.rest()
        stderr = proc.stderr.read().decode()
        first_asked = asked(server)
        assert server.max_in_flight <= 4

        rerun = llamavis(*args, "--base-url", server.url, input=path_list(images400))
        second_asked = asked(server, since=len(first_asked))
    assert "interrupted" in stderr and "Traceback" not in stderr
    finished = jsonl(b"".join(before + after).decode())  # every line is complete JSON
    # what was answered before the interrupt, all of it (and at most the -j 4 in flight)
    assert 40 <= len(finished) <= 60 + 4
    assert_own_answers(finished)

    assert rerun.returncode == 0, rerun.stderr
    docs = jsonl(rerun.stdout)
    assert len(docs) == 400
    assert_own_answers(docs)
    cached = {d["image"] for d in docs if d["cached"]}
    assert {d["image"] for d in finished} <= cached
    assert len(second_asked) == 400 - len(cached)
    assert len(set(second_asked)) == len(second_asked)
    assert not {expected(d["image"]) for d in finished} & set(second_asked)
    assert set(first_asked) | set(second_asked) == {expected(p) for p in images400}


def test_piped_paths_stream_in_results_come_before_the_list_ends(tmp_path):
    photos = make_images(tmp_path, 6)
    with serve(echo()) as server:
        proc = start("caption", "--jsonl", *LOCAL, "--base-url", server.url)
        assert proc.stdin is not None
        reader = LineReader(proc)
        proc.stdin.write(path_list(photos[:3]))
        proc.stdin.flush()
        early = jsonl(b"".join(reader.take(3)).decode())  # stdin is still open
        proc.stdin.write(path_list(photos[3:]))
        proc.stdin.close()
        late = jsonl(b"".join(reader.rest()).decode())
        assert proc.wait(timeout=120) == 0
    assert {d["image"] for d in early} == {str(p) for p in photos[:3]}
    assert {d["image"] for d in late} == {str(p) for p in photos[3:]}
    assert_own_answers(early + late)


def test_ordered_jsonl_keeps_input_order_whatever_finishes_first(tmp_path):
    photos = make_images(tmp_path, 40)

    def uneven(body: dict[str, Any]) -> Reply:  # 0-15 ms, by image: answers finish out of order
        data = sent_image(body)
        return Reply(text=answer_for(data), delay=data[-3] % 16 / 1000)

    with serve(uneven) as server:
        args = ("caption", "-j", "8", "--jsonl", *LOCAL, "--base-url", server.url)
        ordered = llamavis(*args, "--ordered", "--no-cache", input=path_list(photos))
    assert ordered.returncode == 0, ordered.stderr
    docs = jsonl(ordered.stdout)
    assert [d["image"] for d in docs] == [str(p) for p in photos]
    assert_own_answers(docs)


def test_output_dir_writes_one_sidecar_per_image_and_rerun_skips_them(tmp_path):
    photos = make_images(tmp_path / "photos", 12)
    out = tmp_path / "captions"
    with serve(echo()) as server:
        base = (
            "caption",
            str(tmp_path / "photos"),
            *LOCAL,
            "--base-url",
            server.url,
            "--output-dir",
            str(out),
        )
        first = llamavis(*base)
        assert first.returncode == 0, first.stderr
        assert len(server.requests) == 12
        sidecars = sorted(sidecar_files(out))
        assert [p.name for p in sidecars] == [p.stem + ".txt" for p in photos]
        for photo in photos:
            assert (out / f"{photo.stem}.txt").read_text() == expected(photo) + "\n"
        assert first.stdout == ""  # the sidecars are the output

        (out / "img0003.txt").write_text("stale\n")
        (out / "img0007.txt").unlink()
        skip = llamavis(*base, "--no-cache")
        assert skip.returncode == 0, skip.stderr
        assert asked(server, since=12) == [expected(photos[7])]  # only the missing sidecar
        assert "skipped 11" in skip.stderr and "--overwrite" in skip.stderr
        assert (out / "img0003.txt").read_text() == "stale\n"

        redo = llamavis(*base, "--overwrite", "--no-cache")
        assert redo.returncode == 0, redo.stderr
        assert len(server.requests) == 12 + 1 + 12
    assert (out / "img0003.txt").read_text() == expected(photos[3]) + "\n"
    assert len(sidecar_files(out)) == 12  # no temp files left behind


def test_same_named_images_in_two_folders_keep_their_own_sidecars_in_either_order(tmp_path):
    a, b = make_images(tmp_path / "a", 1)[0], make_images(tmp_path / "b", 1, first=1)[0]
    b = b.rename(b.with_name(a.name))  # a/img0000.jpg and b/img0000.jpg: two pictures
    out = tmp_path / "captions"
    with serve(echo()) as server:
        base = ("caption", *LOCAL, "--base-url", server.url, "--output-dir", str(out), "--no-cache")
        first = llamavis(*base, str(a), str(b))
        again = llamavis(*base, str(b), str(a))  # the other order finds both sidecars done
        assert len(server.requests) == 2
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert "skipped 2" in again.stderr
    assert (out / "a" / "img0000.txt").read_text() == expected(a) + "\n"
    assert (out / "b" / "img0000.txt").read_text() == expected(b) + "\n"


def test_classify_sidecars_are_json(tmp_path):
    photos = make_images(tmp_path / "shots", 3)
    out = tmp_path / "labels"
    with serve("Outdoor") as server:
        proc = llamavis(
            "classify",
            *map(str, photos),
            "-c",
            "indoor,outdoor",
            *LOCAL,
            "--base-url",
            server.url,
            "--output-dir",
            str(out),
        )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in sidecar_files(out)) == [f"{p.stem}.json" for p in photos]
    assert all(json.loads(p.read_text()) == "outdoor" for p in sidecar_files(out))


# -- inputs ------------------------------------------------------------------


def test_files_from_a_list_file_and_from_stdin_and_nul_separated(tmp_path):
    photos = make_images(tmp_path / "p", 5)
    listing = tmp_path / "list.txt"
    listing.write_bytes(path_list(photos[:3]))
    want = {str(p) for p in photos}
    with serve(echo()) as server:
        url = ("--base-url", server.url, "--jsonl", "--no-cache", *LOCAL)
        from_file = llamavis("caption", "-T", str(listing), str(photos[3]), *url)
        from_stdin = llamavis("caption", "-T", "-", *url, input=path_list(photos))
        nul = llamavis("caption", "-T", "-", "-0", *url, input=path_list(photos, "\0"))
        piped_nul = llamavis("caption", "-0", *url, input=path_list(photos, "\0"))
    for proc, images in [
        (from_file, {str(p) for p in photos[:4]}),
        (from_stdin, want),
        (nul, want),
        (piped_nul, want),
    ]:
        assert proc.returncode == 0, proc.stderr
        docs = jsonl(proc.stdout)
        assert {d["image"] for d in docs} == images and len(docs) == len(images)
        assert_own_answers(docs)


def test_directory_skips_non_images_with_a_note_and_recursive_descends(tmp_path):
    folder = tmp_path / "folder"
    top = make_images(folder, 3)
    nested = make_images(folder / "sub", 2, first=10)
    (folder / "notes.txt").write_text("not an image")
    (folder / "UPPER.JPG").write_bytes(top[0].read_bytes())
    with serve(echo()) as server:
        flat = llamavis("caption", str(folder), "--jsonl", *LOCAL, "--base-url", server.url)
        deep = llamavis("caption", str(folder), "-r", "--jsonl", *LOCAL, "--base-url", server.url)
    assert flat.returncode == 0, flat.stderr
    assert {d["image"] for d in jsonl(flat.stdout)} == {str(p) for p in top} | {
        str(folder / "UPPER.JPG")
    }
    assert f"skipping {folder / 'notes.txt'}: not an image extension" in flat.stderr
    assert str(folder / "sub") in flat.stderr and "-r" in flat.stderr
    assert deep.returncode == 0, deep.stderr
    docs = jsonl(deep.stdout)
    assert {d["image"] for d in docs} >= {str(p) for p in nested}
    assert len(docs) == 6
    assert_own_answers(docs)


def _pillow_reads_avif() -> bool:
    from PIL import features

    return "avif" in features.get_supported_modules()


@pytest.mark.skipif(not _pillow_reads_avif(), reason="AVIF needs Pillow 11.3 or later")
def test_a_folders_avif_files_are_captioned_like_the_others(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    make_images(folder, 2)
    Image.new("RGB", (48, 32), (200, 30, 30)).save(folder / "phone.avif", format="AVIF")
    with serve(lambda body: "a red square") as server:
        proc = llamavis("caption", str(folder), "--jsonl", *LOCAL, "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    docs = {d["image"]: d for d in jsonl(proc.stdout)}
    assert len(docs) == 3 and docs[str(folder / "phone.avif")]["output"] == "a red square"
    assert "skipping" not in proc.stderr
    # every image went as JPEG: the AVIF was re-encoded for the provider
    assert all(sent_image(body)[:3] == b"\xff\xd8\xff" for body in server.requests)


def test_named_broken_file_is_a_bad_image_result_and_exit_1_while_others_succeed(tmp_path):
    good = make_images(tmp_path, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good[0].read_bytes()[:200])  # a truncated JPEG
    text = tmp_path / "readme.jpg"
    text.write_text("hello, I am not a picture\n")
    missing = tmp_path / "gone.jpg"
    names = [str(good[0]), str(broken), str(good[1]), str(text), str(missing), str(good[2])]
    with serve(echo()) as server:
        proc = llamavis("caption", *names, "--jsonl", *LOCAL, "--base-url", server.url)
    assert proc.returncode == 1
    docs = {d["image"]: d for d in jsonl(proc.stdout)}
    assert set(docs) == set(names)
    for bad in (broken, text, missing):
        assert docs[str(bad)]["output"] is None
        assert docs[str(bad)]["error"]["kind"] == "bad_image"
        assert str(bad) in docs[str(bad)]["error"]["message"]
        assert str(bad) in proc.stderr
    assert_own_answers([docs[str(p)] for p in good])
    assert len(server.requests) == 3


# -- output shapes -------------------------------------------------------------


def test_json_over_several_images_is_one_array(tmp_path):
    photos = make_images(tmp_path, 5)
    with serve(echo()) as server:
        proc = llamavis("caption", *map(str, photos), "--json", *LOCAL, "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert isinstance(doc, list) and len(doc) == 5
    assert_own_answers(doc)


def test_plain_piped_output_is_path_tab_answer_lines(tmp_path):
    photos = make_images(tmp_path, 6)
    with serve(echo()) as server:
        proc = llamavis("caption", *LOCAL, "--base-url", server.url, input=path_list(photos))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert len(rows) == 6 and all(len(row) == 2 for row in rows)
    assert {path: answer for path, answer in rows} == {str(p): expected(p) for p in photos}


# -- cost ------------------------------------------------------------------------


def test_max_cost_stops_starting_requests_and_keeps_what_finished(tmp_path):
    photos = make_images(tmp_path, 40)
    with serve(echo(cost=0.01)) as server:
        proc = llamavis(
            "caption",
            "-j",
            "2",
            "--jsonl",
            "--max-cost",
            "0.05",
            "--usage",
            *LOCAL,
            "--base-url",
            server.url,
            input=path_list(photos),
        )
    docs = jsonl(proc.stdout)
    assert 2 <= len(server.requests) < 40
    assert len(docs) == len(server.requests)  # every answer paid for was written
    assert_own_answers(docs)
    spent = sum(d["usage"]["cost_usd"] for d in docs)
    assert spent <= 0.05 + 1e-9
    assert "--max-cost" in proc.stderr and "stopped" in proc.stderr
    assert f"${spent:.6f}" in proc.stderr  # --usage totals
    assert proc.returncode == 1  # not every image was answered


def test_max_cost_reached_by_the_last_image_is_a_finished_batch_exit_0(tmp_path):
    photos = make_images(tmp_path, 2)
    with serve(echo(cost=0.01)) as server:
        proc = llamavis("caption", "-j", "1", "--max-cost", "0.02", *LOCAL, "--base-url",
                        server.url, *map(str, photos))
    assert len(server.requests) == 2
    assert proc.returncode == 0, proc.stderr
    assert "stopped" not in proc.stderr


def test_max_cost_0_still_answers_images_already_in_the_cache(tmp_path):
    photos = make_images(tmp_path, 5)
    with serve(echo(cost=0.01)) as server:
        ask = ("caption", "--jsonl", "-j", "2", *LOCAL, "--base-url", server.url)
        assert llamavis(*ask, *map(str, photos[:3])).returncode == 0  # three answers cached
        free = llamavis(*ask, "--max-cost", "0", *map(str, photos[:3]))
        mixed = llamavis(*ask, "--max-cost", "0", *map(str, photos))
        assert len(server.requests) == 3  # a cached answer costs nothing; the rest were refused
    assert free.returncode == 0, free.stderr
    assert "stopped" not in free.stderr
    docs = jsonl(free.stdout)
    assert len(docs) == 3 and all(d["cached"] for d in docs)
    assert_own_answers(docs)
    answered = jsonl(mixed.stdout)
    assert sorted(d["image"] for d in answered) == sorted(map(str, photos[:3]))
    assert_own_answers(answered)
    assert mixed.returncode == 1 and "--max-cost" in mixed.stderr and "stopped" in mixed.stderr


def test_dry_run_counts_cached_images_apart_and_prices_only_the_rest(tmp_path):
    make_images(tmp_path / "folder", 4)
    cached = sorted((tmp_path / "folder").iterdir())[:1]
    env = {"OPENROUTER_API_KEY": KEY}
    with serve(echo()) as server:
        route = ("-P", "openrouter", "--base-url", server.url)
        assert llamavis("caption", *map(str, cached), *route, env=env).returncode == 0
        dry = llamavis("caption", str(tmp_path / "folder"), "--dry-run", *route, env=env)
        every = llamavis("caption", str(tmp_path / "folder"), "--dry-run", "--no-cache", *route,
                         env=env)
        assert len(server.requests) == 1
    assert dry.returncode == every.returncode == 0, dry.stderr
    doc, all4 = json.loads(dry.stdout), json.loads(every.stdout)
    assert (doc["request_count"], doc["cached_count"], len(doc["requests"])) == (3, 1, 3)
    assert str(cached[0]) not in {r["image"] for r in doc["requests"]}
    assert all4["request_count"] == 4 and all4["cached_count"] == 0
    assert doc["estimated_cost_usd"] == pytest.approx(all4["estimated_cost_usd"] * 3 / 4)
    assert "3 request(s)" in dry.stderr and "1 image(s) already answered" in dry.stderr


def test_dry_run_over_a_folder_counts_requests_and_cost_and_sends_nothing(tmp_path):
    make_images(tmp_path / "folder", 7)
    (tmp_path / "folder" / "notes.md").write_text("#")
    with serve(echo()) as server:
        proc = llamavis(
            "caption",
            str(tmp_path / "folder"),
            "--dry-run",
            "-P",
            "openrouter",
            "--base-url",
            server.url,
            env={"OPENROUTER_API_KEY": KEY},
        )
    assert proc.returncode == 0, proc.stderr
    assert server.requests == []
    doc = json.loads(proc.stdout)
    assert doc["request_count"] == 7 and len(doc["requests"]) == 7
    assert doc["estimated_cost_usd"] > 0
    assert "7 request(s)" in proc.stderr and "nothing was sent" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr


# -- sharing the cache -------------------------------------------------------------


def test_two_processes_sharing_the_cache_both_succeed(tmp_path):
    photos = make_images(tmp_path, 120)
    left, right = photos[:80], photos[40:]
    with serve(echo(delay=0.005)) as server:
        args = ("caption", "-j", "8", "--jsonl", *LOCAL, "--base-url", server.url)
        procs = [start(*args), start(*args)]
        outs = [
            p.communicate(path_list(images), timeout=300)
            for p, images in zip(procs, (left, right), strict=True)
        ]
        total = len(server.requests)
        third = llamavis(*args, input=path_list(photos))
        assert len(server.requests) == total  # both processes' results were stored
    for proc, (out, err), images in zip(procs, outs, (left, right), strict=True):
        assert proc.returncode == 0, err.decode()
        assert "locked" not in err.decode().lower()
        docs = jsonl(out.decode())
        assert {d["image"] for d in docs} == {str(p) for p in images}
        assert_own_answers(docs)
    assert third.returncode == 0, third.stderr
    assert all(d["cached"] for d in jsonl(third.stdout))


# -- exit codes ----------------------------------------------------------------------


def test_rejected_key_stops_the_batch_at_once_with_exit_3(tmp_path):
    photos = make_images(tmp_path, 100)
    body = {"error": {"message": "User not found.", "code": 401}}
    with serve(Reply(status=401, body=body, delay=0.005)) as server:
        proc = llamavis(
            "caption",
            "-j",
            "4",
            "--jsonl",
            "-P",
            "openrouter",
            "--base-url",
            server.url,
            input=path_list(photos),
            env={"OPENROUTER_API_KEY": KEY},
        )
    assert proc.returncode == 3
    assert len(server.requests) <= 8  # the first few, not the whole batch
    assert "User not found" in proc.stderr and KEY not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_all_succeeded_exits_0(tmp_path):
    photos = make_images(tmp_path, 3)
    with serve(echo()) as server:
        proc = llamavis("caption", *map(str, photos), *LOCAL, "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_a_folder_full_of_other_files_names_the_first_few_then_counts(tmp_path):
    folder = tmp_path / "mixed"
    make_images(folder, 1)
    for i in range(12):
        (folder / f"notes{i:02d}.txt").write_text("not an image")
    with serve(echo()) as server:
        proc = llamavis("caption", str(folder), "--jsonl", *LOCAL, "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    skips = [line for line in proc.stderr.splitlines() if "skipping" in line]
    assert len(skips) == 5
    assert "skipped 12 entries in all" in proc.stderr


def test_max_cost_with_no_known_price_says_it_counts_only_reported_costs(tmp_path):
    images = make_images(tmp_path / "imgs", 2)
    with serve(echo()) as server:
        proc = llamavis("caption", *map(str, images), "--max-cost", "1", *LOCAL, "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert "no price is known" in proc.stderr and "--max-cost" in proc.stderr
