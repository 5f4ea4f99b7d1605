"""``eval --html``: one page to look at: each image's thumbnail, its gold, each route's answer.

A wrong answer is marked (red), as is a row where routes disagree; thumbnails are small
JPEGs inlined as base64, so the page is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llamavis.types import JSONObject

THUMB = 160
STYLE = """body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
.wrong{background:#fde2e2}.right{background:#e3f6e3}tr.disagree td.name{border-left:4px solid #d33}
pre{white-space:pre-wrap;margin:0;max-width:28em}.err{color:#a00}"""


def write_page(path: Path, reports: Sequence[JSONObject]) -> None:
    """Write the page for these reports (one per task) to ``path``."""
    from llamavis.errors import UsageError

    body = "".join(_section(r) for r in reports)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>llamavis eval</title>"
            f"<style>{STYLE}</style></head><body><h1>llamavis eval</h1>{body}</body></html>\n")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --html {path}: {exc.strerror or exc}") from None


def _section(report: JSONObject) -> str:
    routes = [r["route"] for r in report["routes"]]
    head = "".join(f"<th>{_e(name)}</th>" for name in routes)
    summary = "".join(f"<li>{_e(r['route'])}: {_e(_headline(r))}</li>" for r in report["routes"])
    rows = "".join(_row(item, routes) for item in report["per_image"])
    return (f"<h2>{_e(report['task'])}</h2><ul>{summary}</ul>"
            f"<table><tr><th>image</th><th>thumbnail</th><th>gold</th>{head}</tr>{rows}</table>")


def _row(item: JSONObject, routes: Sequence[str]) -> str:
    cells = []
    for name in routes:
        answer = item["answers"][name]
        if answer["error"]:
            text = f"<span class='err'>{_e(answer['error'].get('message', 'failed'))}</span>"
        else:
            text = f"<pre>{_e(_shown(answer['output']))}</pre>"
        cells.append(f"<td class='{'right' if answer['correct'] else 'wrong'}'>{text}</td>")
    mark = " class='disagree'" if item["disagree"] else ""
    question = f"<br><small>Q: {_e(item['question'])}</small>" if item.get("question") else ""
    return (f"<tr{mark}><td class='name'>{_e(item['image'])}{question}</td>"
            f"<td>{_thumbnail(item['source'])}</td><td><pre>{_e(_shown(item['gold']))}</pre></td>"
            f"{''.join(cells)}</tr>")


def _headline(route: JSONObject) -> str:
    if route["error"]:
        return f"failed: {route['error']}"
    shown = {k: v for k, v in route["metrics"].items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return ", ".join(f"{k} {v}" for k, v in shown.items())


def _thumbnail(source: str) -> str:
    """A small JPEG of the image as a data URL; a dash when it cannot be read."""
    try:
        from PIL import Image, ImageOps

        with Image.open(source) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        image.thumbnail((THUMB, THUMB))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=70)
    except Exception:  # noqa: BLE001 - a thumbnail is a nicety: any failure shows a dash
        return "-"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='' src='data:image/jpeg;base64,{data}'>"


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
