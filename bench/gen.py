"""Benchmark images, made with Pillow: photo-like (smooth colour fields, texture, sensor noise).

Large images are kept between runs in a folder under the system temp dir, keyed by
GEN_VERSION, because making them (a HEIC above all) takes longer than measuring them.
Batch folders are made per run: a few distinct base JPEGs, each file made unique by a
JPEG comment segment, so every file has its own bytes (and its own cache key).
"""

from __future__ import annotations

import io
import os
import random
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

GEN_VERSION = 1


def store_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"llamavis-bench-images-v{GEN_VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def photo_like(width: int, height: int, seed: int, noise: float = 12.0) -> Image.Image:
    """An RGB image that compresses like a photo: colour fields, mid-scale texture, noise."""
    rnd = random.Random(seed)
    fields = Image.frombytes("RGB", (16, 12), rnd.randbytes(16 * 12 * 3))
    base = fields.resize((width, height), Image.Resampling.BICUBIC)
    tw, th = max(1, width // 16), max(1, height // 16)
    texture = Image.frombytes("RGB", (tw, th), rnd.randbytes(tw * th * 3))
    base = Image.blend(base, texture.resize((width, height), Image.Resampling.BILINEAR), 0.25)
    if noise <= 0:
        return base
    grain = Image.effect_noise((width, height), noise).convert("RGB")
    return ImageChops.add(base, grain, scale=1.0, offset=-128)


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _cached(name: str, make) -> Path:
    path = store_dir() / name
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(make())
        os.replace(tmp, path)
    return path


def big_images(with_heic: bool) -> dict[str, Path]:
    """The preparation inputs: 24 Mpx JPEG (plain and EXIF-rotated), 12 Mpx PNG, 12 Mpx HEIC."""
    out: dict[str, Path] = {}
    jpeg = _cached("24mp.jpg", lambda: encode(photo_like(6000, 4000, 1), "JPEG", quality=90))
    out["JPEG 6000x4000 (24 Mpx)"] = jpeg

    def rotated() -> bytes:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to view": what a phone held upright writes
        return encode(Image.open(jpeg), "JPEG", quality=90, exif=exif.tobytes())

    out["JPEG 6000x4000, EXIF rotated"] = _cached("24mp-rot6.jpg", rotated)
    out["PNG 4000x3000 (12 Mpx)"] = _cached(
        "12mp.png", lambda: encode(photo_like(4000, 3000, 2), "PNG", compress_level=1)
    )
    if with_heic:
        import pillow_heif

        pillow_heif.register_heif_opener()
        out["HEIC 4032x3024 (12 Mpx)"] = _cached(
            "12mp.heic",
            lambda: encode(photo_like(4032, 3024, 3), "HEIF", quality=80,
                           enc_params={"preset": "ultrafast"}),
        )
    return out


def unique_jpeg(base: bytes, index: int) -> bytes:
    """The same picture with a COM segment naming ``index``: distinct bytes, same pixels."""
    text = f"llamavis bench image {index}".encode()
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return base[:2] + segment + base[2:]


def batch_folder(root: Path, count: int, size: tuple[int, int], *, distinct: int = 32,
                 noise: float = 5.0) -> Path:
    """``count`` unique JPEGs of ``size`` in a new folder under ``root``."""
    folder = root / f"{size[0]}x{size[1]}-{count}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    bases = [encode(photo_like(*size, seed=100 + i, noise=noise), "JPEG", quality=85)
             for i in range(min(distinct, count))]
    for i in range(count):
        (folder / f"img{i:05d}.jpg").write_bytes(unique_jpeg(bases[i % len(bases)], i))
    return folder
