"""read_source and iter_sources: which images a command line names, and reading their bytes."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import httpx
import pytest
import respx

from llamavis.errors import ImageError, UsageError
from llamavis.images.sources import is_url, iter_sources, read_source

URL = "https://example.test/cat.jpg"


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def listed(root: Path, **kw) -> list[str]:
    return [os.path.relpath(p, root) for p in iter_sources([str(root)], **kw)]


# --- read_source ------------------------------------------------------------------------


def test_reads_a_file(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8data")
    assert read_source(str(tmp_path / "a.jpg")) == b"\xff\xd8data"


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"x" * 11), "larger than the"),
    ],
)
def test_unreadable_file_raises_image_error_naming_it(tmp_path, setup, words):
    path = tmp_path / "photo.jpg"
    setup(path)
    with pytest.raises(ImageError, match=words) as info:
        read_source(str(path), max_bytes=10)
    assert str(info.value).startswith(f"{path}: ") and info.value.kind == "bad_image"


def test_file_without_permission_is_an_image_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(ImageError, match="secret.jpg: cannot read"):
        read_source(str(path))


def test_dash_reads_the_image_from_stdin():
    assert read_source("-", stdin=io.BytesIO(b"\x89PNG")) == b"\x89PNG"


def test_stdin_past_the_cap_is_refused_not_truncated():
    with pytest.raises(ImageError, match=r"^-: larger than the 100 bytes cap$"):
        read_source("-", stdin=io.BytesIO(b"x" * 200), max_bytes=100)


def test_url_is_downloaded():
    with respx.mock:
        route = respx.get(URL).respond(200, content=b"jpegbytes")
        assert read_source(URL) == b"jpegbytes"
    assert route.calls.last.request.headers["user-agent"].startswith("llamavis/")


def test_download_follows_redirects_with_an_injected_client():
    with respx.mock:
        respx.get(URL).respond(302, headers={"Location": "https://cdn.example.test/c.jpg"})
        respx.get("https://cdn.example.test/c.jpg").respond(200, content=b"img")
        with httpx.Client() as client:
            assert read_source(URL, client=client) == b"img"
            assert not client.is_closed  # a caller's client is left open


def test_http_error_status_names_url_and_status():
    with respx.mock:
        respx.get(URL).respond(404)
        with pytest.raises(
            ImageError, match=r"^https://example.test/cat.jpg: .*HTTP 404 Not Found$"
        ):
            read_source(URL)


def test_download_larger_than_declared_cap_is_refused():
    with respx.mock:
        respx.get(URL).respond(200, content=b"x" * 1000)
        with pytest.raises(ImageError, match="larger than the 100 bytes cap"):
            read_source(URL, max_bytes=100)


def test_download_without_length_is_cut_off_at_the_cap():
    sent = []

    def body():
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 100

    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(200, content=body()))
        with pytest.raises(ImageError, match="larger than the 1000 bytes cap"):
            read_source(URL, max_bytes=1000)
    assert len(sent) < 20  # it stopped reading, it did not fetch everything first


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "download failed: .*Name"),
        (httpx.ReadTimeout("read timed out"), "timed out after 7 s"),
        (httpx.RemoteProtocolError(""), "download failed: RemoteProtocolError"),
    ],
)
def test_network_failure_is_a_one_line_image_error(error, words):
    with respx.mock:
        respx.get(URL).mock(side_effect=error)
        with pytest.raises(ImageError, match=words) as info:
            read_source(URL, timeout=7)
    assert str(info.value).startswith(URL) and "\n" not in str(info.value)


def test_password_in_url_is_masked_in_messages():
    url = "https://user:hunter2@example.test/a.jpg"
    with respx.mock:
        respx.get("https://example.test/a.jpg").respond(500)
        with pytest.raises(ImageError) as info:
            read_source(url)
    assert "hunter2" not in str(info.value) and "user:***@example.test" in str(info.value)


def test_cap_is_spelled_in_megabytes(tmp_path):
    path = tmp_path / "huge.tif"
    with open(path, "wb") as handle:
        handle.truncate(51 * 2**20)  # sparse: no real 51 MB written
    with pytest.raises(ImageError, match=r"huge.tif: 51 MB, larger than the 50 MB cap$"):
        read_source(str(path))


def test_is_url_is_case_insensitive_and_strict():
    assert is_url("HTTPS://x.test/a.png") and is_url("http://x")
    assert not is_url("httpx.jpg") and not is_url("ftp://x/a.png") and not is_url("-")


# --- iter_sources -----------------------------------------------------------------------


def test_directory_gives_its_images_sorted_and_notes_the_rest(tmp_path):
    touch(tmp_path, "b.PNG", "a.jpg", "c.Tiff", "notes.txt", ".DS_Store", "._a.jpg", "sub/d.jpg")
    skipped: list[tuple[str, str]] = []
    got = listed(tmp_path, on_skip=lambda p, why: skipped.append((os.path.basename(p), why)))
    assert got == ["a.jpg", "b.PNG", "c.Tiff"]
    reasons = dict(skipped)
    assert reasons["notes.txt"] == "not an image extension"
    assert reasons["._a.jpg"] == reasons[".DS_Store"] == "hidden"
    assert "--recursive" in reasons["sub"]


def test_a_directory_gives_its_avif_and_heic_files_too(tmp_path):
    touch(tmp_path, "a.avif", "b.AVIF", "c.heic", "d.txt")
    assert listed(tmp_path) == ["a.avif", "b.AVIF", "c.heic"]


def test_recursive_descends_in_name_order(tmp_path):
    touch(tmp_path, "a.jpg", "m/b.jpg", "m/n/c.webp", "z.gif", "m/skip.txt", ".cache/x.jpg")
    assert listed(tmp_path, recursive=True) == [
        "a.jpg",
        os.path.join("m", "b.jpg"),
        os.path.join("m", "n", "c.webp"),
        "z.gif",
    ]


def test_symlink_loop_does_not_hang(tmp_path):
    touch(tmp_path, "a/x.jpg")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    skipped = []
    got = listed(tmp_path / "a", recursive=True, on_skip=lambda p, why: skipped.append(why))
    assert got == ["x.jpg"] and any("already visited" in why for why in skipped)


def test_named_files_urls_dash_and_missing_paths_pass_through_in_order(tmp_path):
    odd = tmp_path / "scan.dat"
    odd.write_bytes(b"x")
    args = [str(odd), URL, "-", "missing.jpg"]
    assert list(iter_sources(args)) == args


def test_files_from_reads_lines_crlf_and_skips_blanks(tmp_path):
    touch(tmp_path, "dir/p.jpg", "dir/q.txt")
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"a b.jpg\r\n\r\n  \n{tmp_path / 'dir'}\nlast.png".encode())
    got = list(iter_sources([], files_from=str(listing)))
    assert got == ["a b.jpg", str(tmp_path / "dir" / "p.jpg"), "last.png"]


def test_args_come_before_the_files_from_list(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("from-list.jpg\n")
    assert list(iter_sources(["arg.jpg"], files_from=str(listing))) == ["arg.jpg", "from-list.jpg"]


def test_null_separated_list_keeps_newlines_in_names():
    stdin = io.BytesIO(b"one.jpg\0two\nlines.jpg\0\0")
    got = list(iter_sources([], files_from="-", null_separated=True, stdin=stdin))
    assert got == ["one.jpg", "two\nlines.jpg"]


def test_piped_path_list_is_read_when_no_image_is_given():
    stdin = io.StringIO("x.jpg\ny.jpg\n")
    assert list(iter_sources([], read_stdin_list=True, stdin=stdin)) == ["x.jpg", "y.jpg"]


def test_piped_stdin_is_ignored_when_images_are_given():
    stdin = io.StringIO("x.jpg\n")
    assert list(iter_sources(["a.jpg"], read_stdin_list=True, stdin=stdin)) == ["a.jpg"]


def test_non_utf8_file_names_survive_the_list(tmp_path):
    stdin = io.BytesIO(b"caf\xe9.jpg\n")
    (name,) = iter_sources([], files_from="-", stdin=stdin)
    assert os.fsencode(name) == b"caf\xe9.jpg"


def test_list_is_streamed_not_read_whole():
    class Endless(io.RawIOBase):
        reads = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            Endless.reads += 1
            return b"img.jpg\n" * 1000

    first = list(itertools.islice(iter_sources([], files_from="-", stdin=Endless()), 5))
    assert first == ["img.jpg"] * 5 and Endless.reads == 1


def test_stdin_cannot_be_both_list_and_image():
    with pytest.raises(UsageError, match="standard input"):
        iter_sources(["-"], files_from="-", stdin=io.StringIO(""))


def test_missing_files_from_list_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="nope.txt: no such file"):
        iter_sources([], files_from=str(tmp_path / "nope.txt"))


def test_stdin_image_named_twice_is_a_usage_error():
    # Standard input can be read once: a second '-' would be an empty image.
    with pytest.raises(UsageError, match="standard input"):
        iter_sources(["-", "photo.jpg", "-"], stdin=io.BytesIO(b""))


@pytest.mark.parametrize("source", ["stdin", "file"])
def test_a_nul_separated_list_without_dash_0_is_a_usage_error_that_says_so(tmp_path, source):
    # `find . -print0 | llamavis caption` without -0: one "line" with NULs in it.
    data = b"a.jpg\0b.jpg\0"
    if source == "file":
        (tmp_path / "list").write_bytes(data)
        it = iter_sources([], files_from=str(tmp_path / "list"))
    else:
        it = iter_sources([], files_from="-", stdin=io.BytesIO(data))
    with pytest.raises(UsageError, match="-0"):
        list(it)
