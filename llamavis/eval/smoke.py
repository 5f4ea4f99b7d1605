"""The built-in labelled set of ``eval --smoke``, drawn the same way every time.

Twenty small images a healthy Llama 3.2 Vision route gets nearly all right: one shape per
image for classify (circle, square, triangle), two or three shapes for multi-classify,
printed lines for ocr, and a number of dots to count for structured. The drawing uses a
fixed seed, so every run, machine and route sees the same pixels.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from llamavis.eval.labels import Gold, Pairing
from llamavis.run.options import TaskArgs

SIZE = 448
SHAPES = ("circle", "square", "triangle")
COLOURS = ((220, 40, 40), (40, 140, 60), (40, 80, 220), (230, 160, 20))
LINES = ("THE QUICK BROWN FOX", "Invoice 2047 paid", "llamavis smoke test 42",
         "Meet at 10:30 in room B")
COUNTS = (1, 3, 4, 6)
COUNT_SCHEMA = {"type": "object", "required": ["dots"],
                "properties": {"dots": {"type": "integer",
                                        "description": "how many black dots the image shows"}}}


@dataclass(frozen=True)
class SmokeSet:
    """One task of the smoke set: its arguments, its images paired with their gold."""

    task: str
    args: TaskArgs
    pairing: Pairing
    classes: list[str]


def build_smoke(folder: Path) -> list[SmokeSet]:
    """Draw the set into ``folder``; its four tasks."""
    from PIL import Image, ImageDraw

    rng = random.Random(3211)  # the seed is the set: change it and every number changes
    made: dict[str, list[tuple[str, str, Gold]]] = {}

    def save(task: str, name: str, gold: Any, paint: Callable[[Any], None]) -> None:
        image = Image.new("RGB", (SIZE, SIZE), "white")
        paint(ImageDraw.Draw(image))
        path = folder / name
        image.save(path, "PNG")
        made.setdefault(task, []).append((name, str(path), Gold(name, gold)))

    centre = (SIZE // 2, SIZE // 2)
    for i, shape in enumerate(SHAPES * 2):
        save("classify", f"shape-{i}.png", shape,
             partial(_shape, shape=shape, centre=centre, r=120, colour=COLOURS[i % 4]))
    for i, combo in enumerate(_combos()):
        save("multi-classify", f"shapes-{i}.png", list(combo), partial(_shapes, combo=combo))
    for i, line in enumerate(LINES):
        save("ocr", f"text-{i}.png", line, partial(_text, text=line))
    for n in COUNTS:
        save("structured", f"dots-{n}.png", {"dots": n}, partial(_dots, n=n, rng=rng))
    classes = list(SHAPES)
    return [
        SmokeSet("classify", TaskArgs("classify", classes=classes),
                 Pairing(made["classify"]), classes),
        SmokeSet("multi-classify", TaskArgs("multi-classify", classes=classes),
                 Pairing(made["multi-classify"]), classes),
        SmokeSet("ocr", TaskArgs("ocr"), Pairing(made["ocr"]), []),
        SmokeSet("structured", TaskArgs("structured", schema=COUNT_SCHEMA),
                 Pairing(made["structured"]), []),
    ]


def _combos() -> list[tuple[str, ...]]:
    a, b, c = SHAPES
    return [(a, b), (b, c), (a, c), (a, b, c), (c, a), (b, a, c)]


def _spot(j: int, n: int) -> tuple[int, int]:
    step = SIZE // (n + 1)
    return (step * (j + 1), SIZE // 2 + (60 if j % 2 else -60))


def _shapes(draw: Any, combo: Sequence[str]) -> None:
    for j, shape in enumerate(combo):
        _shape(draw, shape, _spot(j, len(combo)), 70, COLOURS[j])


def _shape(draw: Any, shape: str, centre: tuple[int, int], r: int, colour: Sequence[int]) -> None:
    x, y = centre
    fill = tuple(colour)
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)


def _text(draw: Any, text: str) -> None:
    from PIL import ImageFont

    try:
        font: Any = ImageFont.load_default(size=34)
    except (TypeError, OSError):  # Pillow built without FreeType: the small bitmap font
        font = ImageFont.load_default()
    draw.text((24, SIZE // 2 - 20), text, fill="black", font=font)


def _dots(draw: Any, n: int, rng: random.Random) -> None:
    """n black dots on a grid (jittered), never touching each other."""
    cells = [(cx, cy) for cx in range(4) for cy in range(4)]
    rng.shuffle(cells)
    for cx, cy in cells[:n]:
        x = 56 + cx * 112 + rng.randint(-12, 12)
        y = 56 + cy * 112 + rng.randint(-12, 12)
        draw.ellipse((x - 26, y - 26, x + 26, y + 26), fill="black")
