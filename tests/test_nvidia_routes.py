"""Issue 19: NVIDIA's API catalog, dated route facts, and a default that finds a live route.

Every test runs the installed command against loopback servers, each provider's endpoint
set by LLAMAVIS_<PROVIDER>_BASE_URL, so the routes are the ones a user would get.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from fakeserver import FakeServer, Reply
from test_cli_tasks import llamavis

pytestmark = pytest.mark.subprocess

KEY_NV = "nvapi-test-SENTINEL-7c1d"
KEY_OR = "sk-or-test-SENTINEL-2e9f"
KEY_DI = "di-test-SENTINEL-8a0b"
LIMIT = 180_000
NO_ENDPOINTS = "No endpoints found for meta-llama/llama-3.2-11b-vision-instruct."
DEAD = Reply(status=404, body={"error": {"message": NO_ENDPOINTS, "code": 404}})
# NVIDIA's answer for a model past its end of life (as Llama 4 Maverick's since 2026-07-27)
NV_GONE = Reply(status=410, body={"status": 410, "title": "Gone",
                                  "detail": "This model has reached its end of life."})


def data_urls(server: FakeServer) -> list[str]:
    return [part["image_url"]["url"] for body in server.requests for m in body["messages"]
            for part in (m["content"] if isinstance(m["content"], list) else [])
            if part.get("type") == "image_url"]


def noisy(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """A photo-like image that compresses badly (random noise over a gradient)."""
    rng = random.Random(seed)
    w, h = size
    small = Image.new("RGB", (max(1, w // 8), max(1, h // 8)))
    small.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                   for _ in range(small.width * small.height)])
    return small.resize(size, Image.Resampling.NEAREST)


def receipt(size: tuple[int, int] = (800, 6000)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    rng = random.Random(7)
    for y in range(20, size[1] - 20, 24):
        draw.text((20, y), f"ITEM {rng.randrange(10**6):06d}  {rng.randrange(100)}.{rng.randrange(100):02d}",
                  fill="black")
    return img


def test_nvidia_captions_a_big_photo_and_a_long_receipt_each_under_the_inline_limit(tmp_path):
    photo, slip = tmp_path / "photo.jpg", tmp_path / "receipt.png"
    noisy((4000, 3000)).save(photo, quality=95)
    receipt().save(slip)
    env = {"NVIDIA_API_KEY": KEY_NV}
    with FakeServer("A photo.") as nvidia:
        env["LLAMAVIS_NVIDIA_BASE_URL"] = nvidia.url
        proc = llamavis("caption", str(photo), str(slip), "-P", "nvidia", "--no-cache", "--jsonl",
                        env=env)
        big = llamavis("caption", str(photo), "-P", "nvidia", "-m", "90b", "--no-cache",
                       "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["provider"] for r in rows] == ["nvidia", "nvidia"] and all(r["error"] is None for r in rows)
    urls = data_urls(nvidia)
    assert len(urls) == 3 and all(len(u) <= LIMIT for u in urls), [len(u) for u in urls]
    assert all(u.startswith("data:image/") for u in urls)
    assert {h.get("Authorization") for h in nvidia.headers} == {f"Bearer {KEY_NV}"}
    assert [b["model"] for b in nvidia.requests] == ["meta/llama-3.2-11b-vision-instruct"] * 2 + [
        "meta/llama-3.2-90b-vision-instruct"]
    assert big.returncode == 0, big.stderr
    assert KEY_NV not in proc.stdout + proc.stderr + big.stdout + big.stderr


def test_an_image_that_cannot_be_made_to_fit_says_so_and_what_to_do(tmp_path):
    page = tmp_path / "noise.png"
    Image.effect_noise((1120, 1120), 120).convert("RGB").save(page)  # ocr keeps >= 896 px
    with FakeServer("text") as nvidia:
        proc = llamavis("ocr", str(page), "-P", "nvidia", "--no-cache",
                        env={"NVIDIA_API_KEY": KEY_NV, "LLAMAVIS_NVIDIA_BASE_URL": nvidia.url})
    assert proc.returncode == 1
    assert nvidia.requests == []
    line = proc.stderr.strip().splitlines()[-1]
    assert "noise.png" in line and "180,000" in line and "-P cloudflare" in line


def test_a_413_from_nvidia_is_one_clear_error_per_image_not_a_retry_loop(make_image):
    too_big = Reply(status=413, body={"status": 413, "title": "Payload Too Large",
                                      "detail": "Request entity too large"})
    with FakeServer(too_big) as nvidia:
        proc = llamavis("caption", str(make_image()), "-P", "nvidia", "--no-cache",
                        env={"NVIDIA_API_KEY": KEY_NV, "LLAMAVIS_NVIDIA_BASE_URL": nvidia.url})
    assert proc.returncode == 1
    assert len(nvidia.requests) == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert "413" in line and "too large" in line.lower()


def test_nvidia_without_a_key_exits_3_naming_the_variable_and_keys_set(make_image):
    proc = llamavis("caption", str(make_image()), "-P", "nvidia")
    assert proc.returncode == 3
    assert "NVIDIA_API_KEY" in proc.stderr and "llamavis keys set nvidia" in proc.stderr


def photos(folder: Path, n: int = 10) -> list[str]:
    folder.mkdir()
    names = []
    for i in range(n):
        path = folder / f"p{i}.png"
        Image.new("RGB", (40, 30), (20 * i, 100, 200)).save(path)
        names.append(str(path))
    return names


def caption_unpinned(images: list[str], routes: dict[str, tuple[str, FakeServer]]):
    """`caption IMAGES --jsonl -j 3` with no -P, each route's key and loopback endpoint set;
    the finished process and its JSONL rows."""
    env = {}
    for provider, (key, server) in routes.items():
        env |= {f"{provider.upper()}_API_KEY": key,
                f"LLAMAVIS_{provider.upper()}_BASE_URL": server.url}
    proc = llamavis("caption", *images, "--jsonl", "-j", "3", "--no-cache", env=env)
    assert proc.returncode == 0, proc.stderr
    return proc, [json.loads(line) for line in proc.stdout.splitlines()]


def test_with_no_provider_a_live_route_answers_first_and_the_dead_one_waits(tmp_path):
    images = photos(tmp_path / "in")
    with FakeServer(DEAD) as openrouter, FakeServer("From NVIDIA.") as nvidia:
        _, rows = caption_unpinned(images, {"openrouter": (KEY_OR, openrouter),
                                            "nvidia": (KEY_NV, nvidia)})
    assert len(rows) == 10 and {r["provider"] for r in rows} == {"nvidia"}
    assert len(nvidia.requests) == 10 and len(openrouter.requests) <= 3


def test_a_route_that_turns_out_dead_hands_every_image_on_with_one_note(tmp_path):
    images = photos(tmp_path / "in")
    with FakeServer(NV_GONE) as nvidia, FakeServer("From DeepInfra.") as deepinfra:
        proc, rows = caption_unpinned(images, {"nvidia": (KEY_NV, nvidia),
                                               "deepinfra": (KEY_DI, deepinfra)})
    assert len(rows) == 10 and {r["provider"] for r in rows} == {"deepinfra"}
    assert all(r["output"] == "From DeepInfra." for r in rows)
    assert 1 <= len(nvidia.requests) <= 3 and len(deepinfra.requests) == 10
    notes = [line for line in proc.stderr.splitlines() if "dropped" in line]
    assert len(notes) == 1 and "nvidia" in notes[0] and "deepinfra" in notes[0]
    assert KEY_NV not in proc.stderr and KEY_DI not in proc.stderr


def test_a_pinned_route_and_no_fallback_never_move(tmp_path):
    images = photos(tmp_path / "in", 3)
    env_both = {"OPENROUTER_API_KEY": KEY_OR, "NVIDIA_API_KEY": KEY_NV}
    with FakeServer(DEAD) as openrouter, FakeServer(NV_GONE) as nvidia, \
            FakeServer("From DeepInfra.") as deepinfra:
        env = {**env_both, "LLAMAVIS_OPENROUTER_BASE_URL": openrouter.url,
               "LLAMAVIS_NVIDIA_BASE_URL": nvidia.url}
        pinned = llamavis("caption", *images, "-P", "openrouter", "--no-cache", env=env)
        assert nvidia.requests == []
        off = llamavis("caption", *images, "--no-fallback", "--no-cache", env={
            **env, "DEEPINFRA_API_KEY": KEY_DI, "LLAMAVIS_DEEPINFRA_BASE_URL": deepinfra.url})
    assert pinned.returncode == 1 and NO_ENDPOINTS in pinned.stderr
    assert len(openrouter.requests) == 3
    assert off.returncode == 1 and deepinfra.requests == []


def test_no_configured_route_exits_3_listing_live_routes_and_their_keys(make_image):
    proc = llamavis("caption", str(make_image()))
    assert proc.returncode == 3
    text = proc.stderr
    assert "nvidia (NVIDIA_API_KEY)" in text
    assert "cloudflare (CLOUDFLARE_API_TOKEN + CLOUDFLARE_ACCOUNT_ID)" in text
    assert "openrouter" not in text.split("routes that serve the model:")[1].split("(set")[0]


def test_models_json_dates_every_row_and_marks_azures_32_retired():
    proc = llamavis("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert all(dt.date.fromisoformat(r["checked"]) for r in rows)
    assert all(isinstance(r["age_days"], int) and r["age_days"] >= 0 for r in rows)
    azure = {r["alias"]: r for r in rows if r["provider"] == "azure"}
    for alias in ("11b", "90b"):
        assert azure[alias]["state"] == "retired" and azure[alias]["since"] == "2026-06-13"
    assert azure["scout"]["state"] == "served" and azure["maverick"]["state"] == "served"
    deepinfra = next(r for r in rows if r["provider"] == "deepinfra" and r["alias"] == "11b")
    assert deepinfra["state"] == "unconfirmed" and deepinfra["since"] == "2026-07-02"
    nvidia = {r["alias"]: r for r in rows if r["provider"] == "nvidia"}
    assert nvidia["11b"]["model"] == "meta/llama-3.2-11b-vision-instruct"
    assert nvidia["11b"]["state"] == "served"


def test_readme_first_command_names_a_live_route_and_doctor():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    first = readme[:readme.index("\n## ")]
    command = next(line for line in first.splitlines() if "llamavis caption examples/" in line)
    assert "NVIDIA_API_KEY" in first and ("nvidia" in command or "NVIDIA" in command)
    assert "llamavis doctor" in first


def test_doctor_rows_carry_the_route_facts_and_their_age():
    proc = llamavis("doctor", "--json", "-P", "azure", "-P", "nvidia")
    rows = {r["provider"]: r for r in json.loads(proc.stdout)}
    assert rows["azure"]["known"] == "retired 2026-06-13"
    assert rows["nvidia"]["known"] == "served" and rows["nvidia"]["checked"] == "2026-07-30"
    expected = (dt.date.today() - dt.date(2026, 7, 30)).days
    assert rows["nvidia"]["age_days"] == expected
    assert rows["nvidia"]["verdict"] == "not_configured" and "NVIDIA_API_KEY" in rows["nvidia"]["detail"]
