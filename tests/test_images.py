"""prepare_image: what a user's image turns into before upload, and how bad images fail."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from llamavis.errors import ImageError
from llamavis.images import prepare as images
from llamavis.images.prepare import MAX_SIDE, prepare_image
from tests.conftest import make_image_bytes

RED, BLUE, WHITE = (220, 20, 20), (20, 20, 220), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def two_colour(size=(80, 40)) -> Image.Image:
    """Left half red, right half blue: shows where a rotation put things."""
    img = Image.new("RGB", size, RED)
    img.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return img


def close(pixel, expected, tol=24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel[:3], expected, strict=True))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size but holds almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- size, orientation, passthrough -------------------------------------------------------


def test_24_megapixel_jpeg_comes_out_with_long_side_1120():
    data = make_image_bytes((6000, 4000), "JPEG")
    out = prepare_image(data, source="big.jpg")
    assert (out.width, out.height) == (1120, 747)
    assert decode(out.data).size == (1120, 747)
    assert out.mime == "image/jpeg" and not out.passthrough
    assert out.original_size == (6000, 4000) and out.original_bytes == len(data)


def test_4000x3000_photo_shrinks_to_1120x840():
    out = prepare_image(make_image_bytes((4000, 3000), "JPEG"), source="p.jpg")
    assert decode(out.data).size == (1120, 840)


def test_small_jpeg_is_sent_byte_for_byte():
    data = make_image_bytes((640, 480), "JPEG")
    out = prepare_image(data, source="s.jpg")
    assert out.passthrough and out.data == data and out.mime == "image/jpeg"
    assert (out.width, out.height) == (640, 480)


def test_image_exactly_at_the_limit_is_not_touched():
    data = make_image_bytes((MAX_SIDE, 700), "PNG")
    assert prepare_image(data, source="edge.png").passthrough


def test_small_image_is_never_enlarged():
    out = prepare_image(make_image_bytes((30, 20), "BMP"), source="tiny.bmp")
    assert (out.width, out.height) == (30, 20)


def test_custom_max_side_is_honoured():
    out = prepare_image(make_image_bytes((1000, 500), "JPEG"), source="a.jpg", max_side=560)
    assert decode(out.data).size == (560, 280)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied_like_exif_transpose(orientation):
    img = two_colour()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    expected = ImageOps.exif_transpose(decode(data))
    out = decode(prepare_image(data, source="rot.jpg").data)
    assert out.size == expected.size
    for xy in [(2, 2), (out.width - 3, out.height - 3)]:
        assert close(out.getpixel(xy), expected.getpixel(xy)), (orientation, xy)


def test_large_rotated_photo_is_shrunk_and_turned_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held upright: stored landscape, shown portrait
    data = encode(two_colour((2400, 1200)), "JPEG", exif=exif.tobytes())
    out = prepare_image(data, source="portrait.jpg")
    img = decode(out.data)
    assert img.size == (560, 1120) == (out.width, out.height)
    assert out.original_size == (1200, 2400)
    assert close(img.getpixel((280, 10)), RED) and close(img.getpixel((280, 1110)), BLUE)


def test_broken_exif_does_not_fail_the_image():
    data = encode(Image.new("RGB", (40, 30), RED), "JPEG", exif=b"Exif\0\0garbage-not-tiff")
    out = prepare_image(data, source="odd.jpg")
    assert decode(out.data).size == (40, 30)


# --- modes and formats ------------------------------------------------------------------


def test_transparent_png_is_flattened_on_white():
    img = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    img.paste((200, 0, 0, 255), (20, 20, 40, 40))
    out = prepare_image(encode(img, "PNG"), source="logo.png")
    assert not out.passthrough and out.mime == "image/jpeg"
    flat = decode(out.data).convert("RGB")
    assert close(flat.getpixel((2, 2)), WHITE) and close(flat.getpixel((30, 30)), (200, 0, 0))


def test_transparent_png_for_ocr_stays_png_and_has_no_alpha():
    img = Image.new("LA", (50, 20), (0, 0))
    out = prepare_image(encode(img, "PNG"), source="t.png", purpose="text")
    flat = decode(out.data)
    assert out.mime == "image/png" and flat.mode == "RGB" and flat.getpixel((1, 1)) == WHITE


def test_opaque_rgba_screenshot_is_sent_as_is():
    data = encode(Image.new("RGBA", (300, 200), (10, 20, 30, 255)), "PNG")
    out = prepare_image(data, source="shot.png")
    assert out.passthrough and out.data == data and out.mime == "image/png"


def test_palette_png_with_transparent_index_is_flattened():
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    out = prepare_image(encode(img, "PNG", transparency=0), source="p.png")
    assert close(decode(out.data).getpixel((5, 5)), WHITE)


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def cmyk_profile(corners: list[tuple[float, float, float]]) -> bytes:
    """A CMYK press profile (ICC v2: an A2B0 lut16 to Lab) whose 16 corner colours are the
    Lab triples given, indexed c*8 + m*4 + y*2 + k; lcms interpolates between them."""
    clut = b"".join(struct.pack(">3H", round(L * 652.8), round((a + 128) * 256),
                                round((b + 128) * 256)) for L, a, b in corners)
    ends = [0, 65535]  # identity input and output curves
    a2b0 = (b"mft2" + b"\0" * 4 + bytes([4, 3, 2, 0])
            + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
            + struct.pack(">HH", 2, 2) + struct.pack(">8H", *ends * 4) + clut
            + struct.pack(">6H", *ends * 3))
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    name = b"test press\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(name)) + name + b"\0" * 78
    tags = [(b"A2B0", a2b0), (b"wtpt", b"XYZ " + b"\0" * 4 + d50), (b"desc", desc),
            (b"cprt", b"text" + b"\0" * 4 + b"none\0")]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + struct.pack(">I", 0x02100000)
              + b"prtrCMYKLab " + b"\0" * 12 + b"acsp" + b"\0" * 28 + d50 + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + data


def lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    from PIL import ImageCms

    srgb, lab_profile = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    pixel = ImageCms.profileToProfile(Image.new("RGB", (1, 1), rgb), srgb, lab_profile,
                                      outputMode="LAB").getpixel((0, 0))
    return pixel[0] * 100 / 255, pixel[1] - 128, pixel[2] - 128


ORANGE = (230, 120, 20)


def orange_cyan_profile() -> bytes:
    """A press whose cyan ink is orange; every other corner as the plain formula has it."""
    corners = []
    for i in range(16):
        c, m, y, k = (i >> 3) & 1, (i >> 2) & 1, (i >> 1) & 1, i & 1
        corners.append(lab(tuple(round(255 * (1 - v) * (1 - k)) for v in (c, m, y))))
    corners[8] = lab(ORANGE)
    return cmyk_profile(corners)


def test_cmyk_with_an_icc_profile_is_converted_through_that_profile():
    data = encode(Image.new("CMYK", (64, 64), (255, 0, 0, 0)), "JPEG",
                  icc_profile=orange_cyan_profile())
    out = decode(prepare_image(data, source="print.jpg").data)
    assert close(out.getpixel((10, 10)), ORANGE, tol=12)  # the formula would give cyan


def test_cmyk_with_a_broken_icc_profile_falls_back_to_the_formula():
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG",
                  icc_profile=b"not a profile")
    out = decode(prepare_image(data, source="print.jpg").data)
    assert close(out.getpixel((10, 10)), (255, 0, 0), tol=24)


def test_cmyk_jpeg_is_sent_as_rgb():
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG")
    out = prepare_image(data, source="print.jpg")
    img = decode(out.data)
    assert not out.passthrough and img.mode == "RGB"
    assert close(img.getpixel((5, 5)), (255, 0, 0), tol=40)


def test_16_bit_greyscale_png_is_scaled_not_clipped():
    data = encode(Image.new("I;16", (64, 64), 40000), "PNG")
    img = decode(prepare_image(data, source="scan16.png").data)
    assert img.mode == "RGB" and close(img.getpixel((5, 5)), (156, 156, 156), tol=3)


def test_32_bit_and_float_tiffs_are_scaled_to_8_bits():
    as_int = prepare_image(encode(Image.new("I", (40, 40), 70000), "TIFF"), source="i.tif")
    as_float = prepare_image(encode(Image.new("F", (40, 40), 0.5), "TIFF"), source="f.tif")
    assert close(decode(as_int.data).getpixel((1, 1)), WHITE, tol=3)
    assert close(decode(as_float.data).getpixel((1, 1)), (128, 128, 128), tol=3)  # 0..1 range


def test_one_bit_and_greyscale_images_become_rgb_when_reencoded():
    for mode, size in [("1", (1500, 100)), ("L", (1500, 100))]:
        out = prepare_image(
            make_image_bytes(size, "PNG", mode=mode, color=1 if mode == "1" else 90),
            source=f"{mode}.png",
        )
        assert decode(out.data).mode == "RGB"


def test_palette_gif_is_reencoded_unless_the_provider_takes_gif():
    data = make_image_bytes((64, 48), "GIF")
    out = prepare_image(data, source="p.gif")
    assert out.mime == "image/jpeg" and close(decode(out.data).getpixel((3, 3)), (200, 30, 30))
    kept = prepare_image(data, source="p.gif", accepted_mimes=("image/jpeg", "image/gif"))
    assert kept.passthrough and kept.mime == "image/gif"


def test_animated_gif_sends_its_first_frame():
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = prepare_image(data, source="anim.gif", accepted_mimes=("image/jpeg", "image/gif"))
    assert not out.passthrough and out.mime == "image/jpeg"
    assert close(decode(out.data).getpixel((20, 20)), RED)


def test_multipage_tiff_sends_its_first_page():
    pages = [Image.new("RGB", (50, 30), RED), Image.new("RGB", (80, 80), BLUE)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    img = decode(prepare_image(data, source="scan.tiff").data)
    assert img.size == (50, 30) and close(img.getpixel((5, 5)), RED)


def test_webp_passes_through_and_bmp_is_converted():
    webp = make_image_bytes((64, 48), "WEBP")
    assert prepare_image(webp, source="a.webp").passthrough
    bmp = prepare_image(make_image_bytes((64, 48), "BMP"), source="a.bmp")
    assert bmp.mime == "image/jpeg" and not bmp.passthrough


def test_mpo_from_a_phone_counts_as_a_jpeg():
    frames = [Image.new("RGB", (64, 48), RED), Image.new("RGB", (64, 48), BLUE)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    out = prepare_image(data, source="phone.jpg")
    assert out.passthrough and out.mime == "image/jpeg"


def test_heic_is_decoded_when_pillow_heif_is_installed():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = encode(Image.new("RGB", (64, 48), RED), "HEIF")
    out = prepare_image(data, source="IMG_0001.HEIC")
    assert out.mime == "image/jpeg" and close(decode(out.data).getpixel((30, 20)), RED, tol=30)


def test_heic_without_the_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import now fails
    images._heif_available.cache_clear()
    try:
        heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64
        with pytest.raises(ImageError, match=r"IMG_0002\.HEIC.*llamavis\[heif\]"):
            prepare_image(heic, source="IMG_0002.HEIC")
    finally:
        images._heif_available.cache_clear()


def _pillow_reads_avif() -> bool:
    from PIL import features

    return "avif" in features.get_supported_modules()


@pytest.mark.skipif(not _pillow_reads_avif(), reason="AVIF needs Pillow 11.3 or later")
def test_avif_is_decoded_and_sent_as_jpeg():
    data = encode(Image.new("RGB", (64, 48), RED), "AVIF")
    out = prepare_image(data, source="photo.avif")
    assert out.mime == "image/jpeg" and close(decode(out.data).getpixel((30, 20)), RED, tol=30)


def test_avif_where_pillow_cannot_read_it_says_what_to_install(monkeypatch):
    monkeypatch.setattr(images, "_avif_available", lambda: False)
    avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + b"\0" * 64
    with pytest.raises(ImageError, match=r"photo\.avif: AVIF needs Pillow 11\.3 or later"):
        prepare_image(avif, source="photo.avif")


# --- encoding ---------------------------------------------------------------------------


def test_text_purpose_is_lossless_png():
    img = Image.new("RGB", (1600, 400), WHITE)
    out = prepare_image(encode(img, "BMP"), source="receipt.bmp", purpose="text")
    assert out.mime == "image/png" and decode(out.data).size == (1120, 280)


def test_text_purpose_falls_back_to_jpeg_when_png_is_huge(monkeypatch):
    monkeypatch.setattr(images, "PNG_LIMIT", 100)
    noisy = Image.effect_noise((1200, 300), 60).convert("RGB")
    out = prepare_image(encode(noisy, "PNG"), source="n.png", purpose="text")
    assert out.mime == "image/jpeg"


def test_provider_without_jpeg_gets_png():
    out = prepare_image(
        make_image_bytes((2000, 100), "JPEG"), source="a.jpg", accepted_mimes=("image/png",)
    )
    assert out.mime == "image/png" and decode(out.data).format == "PNG"


def test_unknown_purpose_is_a_programming_error():
    with pytest.raises(ValueError):
        prepare_image(make_image_bytes(), source="a.jpg", purpose="poster")


# --- failures ---------------------------------------------------------------------------


def _truncated_jpeg() -> bytes:
    data = encode(Image.effect_noise((400, 300), 50).convert("RGB"), "JPEG")
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    data = encode(Image.effect_noise((400, 300), 50), "PNG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("empty.jpg", b"", "empty"),
        ("cut.jpg", _truncated_jpeg(), "truncated"),
        ("cut.png", _truncated_png(), "truncated"),
        ("random.png", bytes(range(256)) * 8, "not an image"),
        ("notes.txt", b"just some text\n", "not an image"),
        (
            "logo.svg",
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
            "SVG is not supported; convert it to PNG",
        ),
        ("doc.pdf", b"%PDF-1.7\n%...", "PDF"),
        ("login", b"<!DOCTYPE html><html><body>sign in</body></html>", "HTML"),
    ],
)
def test_bad_file_raises_one_line_image_error_naming_it(name, data, words):
    with pytest.raises(ImageError) as info:
        prepare_image(data, source=f"dir/{name}")
    message = str(info.value)
    assert message.startswith(f"dir/{name}: ") and words in message
    assert "\n" not in message and info.value.kind == "bad_image"


def test_jpeg_cut_short_after_a_complete_embedded_jpeg_is_still_refused():
    # EXIF thumbnails are whole JPEGs inside the header: their end marker must not pass
    # for the end of the picture itself.
    embedded = b"\xff\xd8\xff\xda\x00\x02\xff\xd9"
    data = encode(Image.effect_noise((400, 300), 50).convert("RGB"), "JPEG", comment=embedded)
    with pytest.raises(ImageError, match="truncated"):
        prepare_image(data[: len(data) // 2], source="cut.jpg")


def test_jpeg_with_bytes_after_its_end_is_still_sent_as_it_is():
    data = make_image_bytes((300, 200)) + b"appended by a camera app"
    out = prepare_image(data, source="trailer.jpg")
    assert out.passthrough and out.data == data and (out.width, out.height) == (300, 200)


def test_decompression_bomb_is_refused_without_decoding(recwarn):
    with pytest.raises(ImageError, match=r"bomb\.png: too large to decode safely \(400 megapixels"):
        prepare_image(png_header_only(20000, 20000), source="bomb.png")
    with pytest.raises(ImageError, match=r"big\.png: too large to decode safely \(110 megapixels"):
        prepare_image(png_header_only(11000, 10000), source="big.png")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_damaged_bytes_only_ever_raise_image_error():
    originals = [make_image_bytes((40, 30), fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF")]
    for data in originals:
        for pos in range(0, len(data), max(1, len(data) // 40)):
            damaged = bytearray(data)
            damaged[pos] ^= 0xA5
            try:
                prepare_image(bytes(damaged), source="fuzz")
            except ImageError as exc:
                assert str(exc).startswith("fuzz: ")


@pytest.mark.subprocess
def test_importing_images_does_not_import_pillow():
    code = "import sys, llamavis.images.prepare; print('PIL' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["receipt.png", "shapes.jpg", "sign.png", "screenshot_ok.png"])
def test_example_images_are_sent_as_they_are(name):
    path = Path(__file__).resolve().parent.parent / "examples" / name
    out = prepare_image(path.read_bytes(), source=str(path))
    assert out.passthrough and max(out.width, out.height) <= MAX_SIDE
