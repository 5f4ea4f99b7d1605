"""Draw the example images in this folder with Pillow; run it to regenerate them.

    python examples/make_examples.py

Everything is drawn from shapes and Pillow's built-in font, with a fixed random seed, so
the same Pillow version writes the same files. Nothing is copied from elsewhere.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def receipt() -> Image.Image:
    """A shop receipt: name, address, items with prices, total."""
    width, height = 380, 470
    img = Image.new("RGB", (width, height), (250, 249, 244))
    draw = ImageDraw.Draw(img)
    big, normal = font(26), font(18)
    y = 28
    for text, face in [("CORNER GROCERY", big), ("12 Market Street, Springfield", normal),
                       ("14/03/2024   10:42   Till 2", normal)]:  # fmt: skip
        draw.text((width // 2, y), text, font=face, fill=(20, 20, 20), anchor="mt")
        y += 40 if face is big else 28
    items = [("Apples 1 kg", "3.20"), ("Whole milk 1 L", "1.15"), ("Sourdough bread", "4.50"),
             ("Coffee beans 250 g", "7.90"), ("Bananas 6 pcs", "1.80")]  # fmt: skip
    y += 10
    draw.line((24, y, width - 24, y), fill=(90, 90, 90), width=1)
    y += 18
    for name, price in items:
        draw.text((28, y), name, font=normal, fill=(20, 20, 20))
        draw.text((width - 28, y), price, font=normal, fill=(20, 20, 20), anchor="ra")
        y += 32
    y += 4
    draw.line((24, y, width - 24, y), fill=(90, 90, 90), width=1)
    y += 18
    draw.text((28, y), "TOTAL", font=big, fill=(0, 0, 0))
    draw.text((width - 28, y), "18.55", font=big, fill=(0, 0, 0), anchor="ra")
    y += 52
    for line in ["Paid by card   **** 4821", "Thank you for shopping with us!"]:
        draw.text((width // 2, y), line, font=normal, fill=(40, 40, 40), anchor="mt")
        y += 30
    return img


def shapes() -> Image.Image:
    """An outdoor scene: blue sky, a red ball on green grass, a soft shadow."""
    width, height, horizon = 640, 420, 250
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(horizon):  # sky: deep blue at the top, pale at the horizon
        t = y / horizon
        draw.line((0, y, width, y), fill=(int(70 + 120 * t), int(130 + 90 * t), int(220 + 30 * t)))
    for y in range(horizon, height):  # grass: lighter far away, darker close up
        t = (y - horizon) / (height - horizon)
        draw.line((0, y, width, y), fill=(int(90 - 40 * t), int(170 - 50 * t), int(60 - 30 * t)))
    rng = random.Random(3)
    for _ in range(1400):  # blades of grass
        x, y = rng.randrange(width), rng.randrange(horizon + 4, height)
        shade = rng.randrange(-25, 25)
        draw.line((x, y, x + rng.randrange(-3, 4), y - rng.randrange(4, 12)),
                  fill=(40 + shade, 130 + shade, 40 + shade))  # fmt: skip
    for cx, cy, r in [(120, 70, 28), (150, 62, 36), (185, 72, 26), (470, 100, 22), (495, 92, 30)]:
        draw.ellipse((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=(245, 247, 250))
    shadow = Image.new("L", (width, height), 0)
    ImageDraw.Draw(shadow).ellipse((270, 338, 410, 362), fill=120)
    img.paste((30, 70, 25), mask=shadow.filter(ImageFilter.GaussianBlur(6)))
    ball = Image.new("RGB", (130, 130))
    for i in range(65, 0, -1):  # shaded sphere, lit from the upper left
        t = i / 65
        shade = (
            int(120 + 110 * (1 - t) ** 0.6),
            int(10 + 40 * (1 - t) ** 3),
            int(15 + 40 * (1 - t) ** 3),
        )
        off = int(18 * (1 - t))
        ImageDraw.Draw(ball).ellipse(
            (65 - i - off, 65 - i - off, 65 + i - off, 65 + i - off), fill=shade
        )
    mask = Image.new("L", (130, 130), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, 129, 129), fill=255)
    img.paste(ball, (275, 222), mask)
    return img


def sign() -> Image.Image:
    """A red octagonal STOP sign on a grey pole against the sky."""
    size = 400
    img = Image.new("RGB", (size, size), (170, 205, 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((190, 250, 210, size), fill=(130, 130, 135))
    cx, cy = size // 2, 150

    def octagon(radius: float) -> list[tuple[float, float]]:
        return [(cx + radius * math.cos(math.radians(22.5 + 45 * k)),
                 cy + radius * math.sin(math.radians(22.5 + 45 * k))) for k in range(8)]  # fmt: skip

    draw.polygon(octagon(125), fill=(255, 255, 255))
    draw.polygon(octagon(115), fill=(200, 16, 30))
    draw.text((cx, cy), "STOP", font=font(78), fill=(255, 255, 255), anchor="mm",
              stroke_width=3, stroke_fill=(255, 255, 255))  # fmt: skip
    return img


def screenshot_ok() -> Image.Image:
    """A desktop app's dialog: a title bar, a success message and an OK button."""
    width, height = 560, 340
    img = Image.new("RGB", (width, height), (228, 232, 238))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((30, 30, width - 30, height - 30), 10, fill=(255, 255, 255),
                           outline=(180, 186, 196))  # fmt: skip
    draw.rounded_rectangle((30, 30, width - 30, 72), 10, fill=(242, 243, 246))
    draw.rectangle((31, 60, width - 31, 72), fill=(242, 243, 246))
    for i, colour in enumerate([(237, 94, 86), (245, 190, 60), (98, 197, 84)]):
        draw.ellipse((48 + 22 * i, 45, 62 + 22 * i, 59), fill=colour)
    draw.text((width // 2, 52), "Backup Assistant", font=font(16), fill=(60, 60, 60), anchor="mm")
    draw.ellipse((60, 105, 116, 161), fill=(52, 168, 83))
    draw.line([(75, 134), (86, 146), (104, 120)], fill=(255, 255, 255), width=6, joint="curve")
    draw.text((136, 108), "Backup complete", font=font(24), fill=(25, 25, 25))
    draw.text((136, 145), "All 1,284 files were copied to", font=font(16), fill=(70, 70, 70))
    draw.text((136, 167), "the drive \u201cArchive\u201d in 3 min 12 s.", font=font(16),
              fill=(70, 70, 70))  # fmt: skip
    draw.rounded_rectangle((width - 160, height - 90, width - 60, height - 50), 8,
                           fill=(38, 110, 220))  # fmt: skip
    draw.text((width - 110, height - 70), "OK", font=font(18), fill=(255, 255, 255), anchor="mm")
    draw.text((68, height - 70), "Show files", font=font(16), fill=(38, 110, 220), anchor="lm")
    return img


def main() -> None:
    receipt().save(HERE / "receipt.png", optimize=True)
    shapes().save(HERE / "shapes.jpg", quality=85, optimize=True)
    sign().save(HERE / "sign.png", optimize=True)
    screenshot_ok().save(HERE / "screenshot_ok.png", optimize=True)
    for name in ("receipt.png", "shapes.jpg", "sign.png", "screenshot_ok.png"):
        print(f"{name}: {(HERE / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
