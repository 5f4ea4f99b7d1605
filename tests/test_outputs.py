"""Result writers: exact bytes of JSONL, JSON, TSV and sidecar files."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from llamavis.cli.output.writers import (
    JsonArrayWriter,
    JsonlWriter,
    SidecarWriter,
    TsvWriter,
    answer_text,
    dumps,
    sidecar_roots,
    tsv_escape,
)
from llamavis.types import Result, Usage


def res(image: str = "cat.jpg", output=None, task: str = "caption", error=None) -> Result:
    return Result(image=image, task=task, provider="openrouter", model="m", output=output,
                  raw=None if output is None else str(output), usage=Usage(5, 1, None),
                  attempts=1, error=error)  # fmt: skip


FAILED = {"kind": "bad_image", "message": "x.jpg: not an image"}
LINE = ('{"image": "cat.jpg", "task": "caption", "provider": "openrouter", "model": "m", '
        '"output": "a cat", "raw": "a cat", "usage": {"prompt_tokens": 5, "completion_tokens": 1, '
        '"cost_usd": null}, "attempts": 1, "cached": false, "elapsed_s": 0.0, "error": null}')  # fmt: skip


@pytest.mark.parametrize(
    ("output", "text"),
    [("a cat\non a mat", "a cat\non a mat"), (["cat", "dog"], "cat, dog"), ([], ""),
     ({"total": 12.5, "shop": "Café"}, '{"total": 12.5, "shop": "Café"}'), (None, "")],
)  # fmt: skip
def test_answer_text_renders_each_output_shape(output, text: str) -> None:
    assert answer_text(res(output=output)) == text


def test_answer_text_of_a_failure_is_empty() -> None:
    assert answer_text(res(output="stale", error=FAILED)) == ""


def test_json_keeps_unicode_but_escapes_every_control_character() -> None:
    text = dumps({"t": "é\x00\x1b[31m\x7f\x9b\u2028\udcff"})
    assert text == '{"t": "é\\u0000\\u001b[31m\\u007f\\u009b\\u2028\\udcff"}'
    assert json.loads(text)["t"] == "é\x00\x1b[31m\x7f\x9b\u2028\udcff"


def test_jsonl_writes_one_flushed_line_per_result() -> None:
    out = io.StringIO()
    writer = JsonlWriter(out)
    writer.write(res(output="a cat"))
    assert out.getvalue() == LINE + "\n"
    writer.write(res(image="b.jpg", error=FAILED))
    second = json.loads(out.getvalue().splitlines()[1])
    assert second["output"] is None and second["error"] == FAILED


def test_json_array_of_several_results() -> None:
    out = io.StringIO()
    writer = JsonArrayWriter(out, single=True)
    writer.write(res(output="a cat"))
    writer.write(res(output="a cat"))
    writer.close()
    writer.close()
    assert out.getvalue() == f"[\n{LINE},\n{LINE}\n]\n"


def test_json_single_image_is_one_object_and_no_images_an_empty_array() -> None:
    one, none, forced = io.StringIO(), io.StringIO(), io.StringIO()
    w = JsonArrayWriter(one, single=True)
    w.write(res(output="a cat"))
    w.close()
    JsonArrayWriter(none).close()
    w = JsonArrayWriter(forced)
    w.write(res(output="a cat"))
    w.close()
    assert one.getvalue() == LINE + "\n"
    assert none.getvalue() == "[]\n"
    assert json.loads(forced.getvalue()) == [json.loads(LINE)]


def test_tsv_escapes_newlines_tabs_and_backslashes_and_skips_failures() -> None:
    out = io.StringIO()
    writer = TsvWriter(out)
    assert writer.write(res(image="dir\twith tab/a.jpg", output="line 1\nline\t2 C:\\x\r"))
    assert not writer.write(res(image="bad.jpg", error=FAILED))
    writer.write(res(image="b.jpg", output=["x", "y"]))
    assert out.getvalue() == ("dir\\twith tab/a.jpg\tline 1\\nline\\t2 C:\\\\x\\r\nb.jpg\tx, y\n")


def test_tsv_escape_leaves_no_control_character() -> None:
    assert tsv_escape("a\x1b[0m\x00\x85\u2029\udcffé") == "a\\x1b[0m\\x00\\x85\\u2029\\udcffé"


def test_sidecar_names_follow_the_task(tmp_path: Path) -> None:
    assert SidecarWriter(tmp_path, task="caption").path_for("cat.jpg") == tmp_path / "cat.txt"
    for task in ("structured", "classify", "multi-classify"):
        assert SidecarWriter(tmp_path, task=task).path_for("cat.png") == tmp_path / "cat.json"


def test_sidecar_names_for_urls_and_stdin(tmp_path: Path) -> None:
    w = SidecarWriter(tmp_path, task="ocr")
    a = w.path_for("https://example.com/x/My%20Receipt.jpg?size=2")
    b = w.path_for("https://example.com/y/My%20Receipt.jpg")
    assert a.parent == tmp_path and a.name.startswith("My_Receipt-") and a.suffix == ".txt"
    assert a != b and a == w.path_for("https://example.com/x/My%20Receipt.jpg?size=2")
    assert w.path_for("https://example.com/").name.startswith("image-")
    assert w.path_for("-") == tmp_path / "stdin.txt"


def test_same_stem_in_different_folders_never_overwrites(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    w = SidecarWriter(tmp_path / "out", task="caption")
    first = w.write(res(image="a/001.jpg", output="from a"))
    second = w.write(res(image="b/001.jpg", output="from b"))
    assert first == tmp_path / "out" / "a" / "001.txt"
    assert second == tmp_path / "out" / "b" / "001.txt"
    assert first.read_text() == "from a\n" and second.read_text() == "from b\n"
    assert w.path_for("a/001.jpg") == first and w.path_for("b/001.jpg") == second


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_same_stem_sidecar_names_do_not_depend_on_input_order(tmp_path, monkeypatch, where):
    """A re-run in another order must find each image's own sidecar, not the other's."""
    base = tmp_path / "images"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path if where == "inside" else elsewhere)
    images = [str(base / "a" / "x.jpg"), str(base / "b" / "x.jpg")]
    (base / "a").mkdir(parents=True)
    (base / "b").mkdir()
    names = []
    for order in (images, images[::-1]):
        for roots in ([], sidecar_roots(order)):  # piped in, or named on the command line
            w = SidecarWriter(tmp_path / "out", task="caption", roots=roots)
            names.append({image: w.path_for(image) for image in order})
    assert names[0] == names[2] and names[1] == names[3]
    assert all(len(set(found.values())) == 2 for found in names)
    assert names[1] == {images[0]: tmp_path / "out" / "a" / "x.txt",
                        images[1]: tmp_path / "out" / "b" / "x.txt"}


def test_named_files_of_one_folder_keep_plain_names(tmp_path, monkeypatch):
    away(tmp_path, monkeypatch)
    files = [str(tmp_path / "shots" / f"{n}.jpg") for n in ("b", "a")]
    w = SidecarWriter(tmp_path / "labels", task="classify", roots=sidecar_roots(files))
    assert [w.path_for(f).name for f in files] == ["b.json", "a.json"]


def away(tmp_path: Path, monkeypatch) -> None:
    """Work from a directory that holds none of the test's images."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def test_images_under_a_named_root_keep_their_relative_folders(tmp_path, monkeypatch) -> None:
    away(tmp_path, monkeypatch)
    root = tmp_path / "photos"
    w = SidecarWriter(root, task="caption", roots=[root])
    assert w.path_for(str(root / "a" / "001.jpg")) == root / "a" / "001.txt"
    assert w.path_for(str(root / "b" / "001.jpg")) == root / "b" / "001.txt"
    elsewhere = w.path_for(str(tmp_path / "elsewhere.jpg"))
    assert elsewhere.parent == root and re.fullmatch(r"elsewhere-[0-9a-f]{8}\.txt", elsewhere.name)


def test_images_under_the_output_dir_get_their_sidecar_beside_them(tmp_path, monkeypatch):
    away(tmp_path, monkeypatch)
    w = SidecarWriter(tmp_path / "photos", task="caption")
    assert w.path_for(str(tmp_path / "photos" / "x.jpg")) == tmp_path / "photos" / "x.txt"
    assert w.path_for(str(tmp_path / "photos" / "2024" / "y.jpg")) == tmp_path / "photos" / "2024" / "y.txt"


def test_a_second_extension_of_one_name_never_overwrites_the_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = SidecarWriter(tmp_path / "out", task="caption")
    first, second = w.path_for("x.jpg"), w.path_for("x.png")
    assert first == tmp_path / "out" / "x.txt" and second != first


def test_sidecar_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    w = SidecarWriter(tmp_path / "out", task="structured")
    path = w.write(res(image="r.jpg", output={"total": 3, "shop": "Café\x1b"}, task="structured"))
    assert path.read_text(encoding="utf-8") == '{\n  "total": 3,\n  "shop": "Café\\u001b"\n}\n'
    w.write(res(image="r.jpg", output={"total": 4}, task="structured"))
    assert json.loads(path.read_text()) == {"total": 4}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


def test_failed_results_write_no_sidecar(tmp_path: Path) -> None:
    w = SidecarWriter(tmp_path, task="caption")
    assert w.write(res(image="bad.jpg", error=FAILED)) is None
    assert list(tmp_path.iterdir()) == []


def test_existing_sidecars_are_skipped_unless_overwrite(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "done.txt").write_text("old caption\n")
    keep = SidecarWriter(tmp_path, task="caption")
    assert keep.exists("pics/done.jpg") and keep.should_skip("pics/done.jpg")
    assert not keep.exists("pics/new.jpg") and not keep.should_skip("pics/new.jpg")
    redo = SidecarWriter(tmp_path, task="caption", overwrite=True)
    assert redo.exists("pics/done.jpg") and not redo.should_skip("pics/done.jpg")
