"""llamavis.Client: one config, key, template and HTTP pool for many calls, from sync code,
async code and a running event loop; an image is a path, a URL, bytes or a PIL image.

The mocked server answers each request by looking at the image it received (its colour),
so a test can tell that every image got its own answer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import httpx
import pytest
import respx
from PIL import Image

import llamavis
from llamavis.backends import factory

BASE = "http://127.0.0.1:8000/v1"
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def colour_of(request: httpx.Request) -> str:
    """The name of the colour filling the image a chat request carries."""
    content = json.loads(request.content)["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
    pixels = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))).convert("RGB")
    r, g, b = pixels.getpixel((pixels.width // 2, pixels.height // 2))
    return max(("red", r), ("green", g), ("blue", b), key=lambda kv: kv[1])[0]


def by_colour(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={
        "id": "x", "model": "m", "usage": {"prompt_tokens": 1610, "completion_tokens": 2},
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": f"It is {colour_of(request).upper()}."}}],
    })


@pytest.fixture
def server():
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(f"{BASE}/chat/completions").mock(side_effect=by_colour)


def image_bytes(colour: str, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), COLOURS[colour]).save(buf, format=fmt)
    return buf.getvalue()


def client(**kw) -> llamavis.Client:
    return llamavis.Client(provider="local", base_url=BASE, **kw)


def test_a_path_bytes_and_a_pil_image_each_get_their_own_answer(server, tmp_path):
    path = tmp_path / "red.jpg"
    path.write_bytes(image_bytes("red", "JPEG"))
    with client() as c:
        from_path = c.analyze(str(path), task="caption")
        from_bytes = c.analyze(image_bytes("green"), task="caption")
        from_pil = c.analyze(Image.new("RGB", (40, 30), COLOURS["blue"]), task="caption")
        from_pathlib = c.analyze(path, task="ocr", id="receipt-1")
    assert [r.output for r in (from_path, from_bytes, from_pil)] == [
        "It is RED.", "It is GREEN.", "It is BLUE."]
    assert [r.image for r in (from_path, from_bytes, from_pil)] == [str(path), "<bytes>", "<image>"]
    assert from_pathlib.image == "receipt-1" and from_pathlib.output == "It is RED."


def test_a_pil_image_is_sent_as_its_pixels_not_the_file_it_was_opened_from(server, tmp_path):
    path = tmp_path / "red.png"
    path.write_bytes(image_bytes("red"))
    img = Image.open(path)
    img.paste(COLOURS["blue"], (0, 0, img.width, img.height))  # now blue, the file still red
    with client(cache=False) as c:
        assert c.analyze(img, id="painted").output == "It is BLUE."


def test_classify_lands_in_the_given_set(server):
    with client() as c:
        result = c.analyze(image_bytes("green"), task="classify", classes=["red", "green", "blue"])
    assert result.ok and result.output == "green"


def test_analyze_many_yields_one_result_per_image_each_its_own(server, tmp_path):
    names = ["red", "green", "blue", "green", "red", "blue"]
    images = [(f"img-{i}", image_bytes(colour)) for i, colour in enumerate(names)]
    images.append(Image.new("RGB", (40, 30), COLOURS["green"]))  # a bare image among the pairs
    with client(concurrency=3) as c:
        results = list(c.analyze_many(images, task="classify", classes="red,green,blue"))
        ordered = list(c.analyze_many(images[:4], task="caption", ordered=True))
    assert len(results) == len(images)
    got = {r.image: r.output for r in results}
    assert got == {**{f"img-{i}": colour for i, colour in enumerate(names)}, "<image>": "green"}
    assert [r.image for r in ordered] == ["img-0", "img-1", "img-2", "img-3"]


def test_one_client_opens_one_http_pool_for_every_call(server, monkeypatch):
    made, pools = [], []
    real_make, real_pool = factory.make_client, httpx.AsyncClient

    def counting_make(*args, **kwargs):
        made.append(1)
        return real_make(*args, **kwargs)

    class CountingPool(real_pool):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            pools.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(factory, "make_client", counting_make)
    monkeypatch.setattr(httpx, "AsyncClient", CountingPool)
    # One request at a time: the client keeps a pool per request in flight (backends/pool.py).
    with client(cache=False, concurrency=1) as c:
        c.analyze(image_bytes("red"))
        c.analyze(image_bytes("red"), task="ocr")
        c.analyze(image_bytes("blue"), task="classify", classes=["red", "blue"])
        list(c.analyze_many([image_bytes("green")] * 3, task="vqa", question="Which colour?"))
    assert server.call_count == 4  # the three identical green images of one run: asked once
    assert (len(made), len(pools)) == (1, 1)


def test_the_async_twins_answer_without_blocking_the_callers_loop(server):
    async def main():
        async with client() as c:
            one = await c.aanalyze(image_bytes("red"), id="a")
            many = [r async for r in c.aanalyze_many([("b", image_bytes("blue")),
                                                      ("g", image_bytes("green"))])]
        return one, many

    one, many = asyncio.run(main())
    assert (one.image, one.output) == ("a", "It is RED.")
    assert sorted((r.image, r.output) for r in many) == [("b", "It is BLUE."), ("g", "It is GREEN.")]


def test_a_blocking_call_works_inside_a_running_event_loop_as_in_a_notebook(server):
    async def notebook_cell():
        with client() as c:
            return c.analyze(image_bytes("blue")), list(c.analyze_many([image_bytes("red")]))

    one, many = asyncio.run(notebook_cell())
    assert one.output == "It is BLUE." and [r.output for r in many] == ["It is RED."]


def test_a_rejected_key_ends_analyze_many_with_an_auth_error():
    with respx.mock() as mock:
        mock.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(
            401, json={"error": {"message": "User not found.", "code": 401}}))
        with client(api_key="sk-wrong") as c, pytest.raises(llamavis.AuthError):
            list(c.analyze_many([image_bytes("red"), image_bytes("blue")]))


def test_an_image_of_another_type_is_a_type_error_naming_it():
    with client() as c, pytest.raises(TypeError, match="not int"):
        c.analyze(42)


def test_a_result_is_its_json_envelope_typed(server):
    with client() as c:
        result = c.analyze(image_bytes("red"), id="x")
    envelope = result.to_dict()
    assert envelope["image"] == "x" and envelope["output"] == "It is RED."
    assert llamavis.Result.from_dict(json.loads(json.dumps(envelope))).to_dict() == envelope


def test_the_package_is_typed_and_names_its_public_api():
    assert (Path(llamavis.__file__).parent / "py.typed").is_file()
    assert llamavis.__all__ == sorted(llamavis.__all__)
    for name in llamavis.__all__:
        if name != "__version__":
            assert getattr(llamavis, name).__doc__, f"llamavis.{name} has no docstring"


def test_a_client_with_fallback_routes_asks_the_next_route_when_the_model_is_not_served(
        monkeypatch, caplog):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    with respx.mock() as mock:
        gone = mock.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(
            404, json={"error": {"message": "The model `x` does not exist.", "code": 404}}))
        served = mock.post("https://openrouter.ai/api/v1/chat/completions").mock(
            side_effect=by_colour)
        with client(fallback="openrouter", cache=False) as c:
            first = c.analyze(image_bytes("red"))
            second = c.analyze(image_bytes("blue"))
    assert (first.output, second.output) == ("It is RED.", "It is BLUE.")
    assert first.provider == second.provider == "openrouter"
    assert gone.call_count == 1 and served.call_count == 2  # dropped once, for the Client's life
    assert "dropped" in caplog.text
