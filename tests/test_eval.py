"""`llamavis eval`: the installed command against loopback servers whose answers are known."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from PIL import Image

from fakeserver import FakeServer
from test_cli_tasks import KEY, llamavis

# Ten images, each a solid colour the fake server recognises (it answers by image).
COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 230, 30), (30, 230, 230),
           (230, 30, 230), (120, 60, 20), (250, 150, 150), (20, 90, 120), (140, 140, 140)]
ENV = {"OPENROUTER_API_KEY": KEY, "DEEPINFRA_API_KEY": KEY}


def draw_set(folder: Path, n: int = 10) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img-{i}.png"
        Image.new("RGB", (96, 96), COLOURS[i]).save(folder / name)
        names.append(name)
    return names


def image_index(body: dict) -> int:
    """Which of COLOURS the request's image shows (nearest colour, after any re-encoding)."""
    part = next(p for m in body["messages"] for p in m["content"]
                if isinstance(p, dict) and p.get("type") == "image_url")
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    pixel = Image.open(io.BytesIO(data)).convert("RGB").getpixel((48, 48))
    return min(range(len(COLOURS)), key=lambda i: sum((a - b) ** 2 for a, b in
                                                      zip(COLOURS[i], pixel, strict=True)))


def answering(answers: list[str]):
    return lambda body: answers[image_index(body)]


GOLD = ["cat", "dog", "bird", "cat", "dog", "bird", "cat", "dog", "bird", "cat"]
# the server agrees with the gold on 7 of 10: img-1 dog->cat, img-2 bird->dog, img-5 bird->dog
SAID = ["cat", "cat", "dog", "cat", "dog", "dog", "cat", "dog", "bird", "cat"]


def write_csv(path: Path, names: list[str], column: str, values: list[str]) -> Path:
    lines = [f"file_name,{column}"] + [f"{n},{v}" for n, v in zip(names, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def eval_cmd(*args: str, env: dict[str, str] | None = None):
    return llamavis("eval", *args, "--no-cache", env={**ENV, **(env or {})}, timeout=120)


def test_classify_with_7_of_10_right_reports_accuracy_0_7_and_the_confusion_counts(tmp_path):
    names = draw_set(tmp_path / "photos")
    labels = write_csv(tmp_path / "labels.csv", names, "label", GOLD)
    with FakeServer(answering(SAID)) as server:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "-P", "openrouter", "--base-url", server.url,
                        "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    route = report["routes"][0]
    assert route["route"] == "openrouter" and route["error"] is None
    assert route["metrics"]["accuracy"] == 0.7
    confusion = route["metrics"]["confusion"]
    assert confusion["cat"] == {"cat": 4, "dog": 0, "bird": 0, "(no answer)": 0}
    assert confusion["dog"] == {"cat": 1, "dog": 2, "bird": 0, "(no answer)": 0}
    assert confusion["bird"] == {"cat": 0, "dog": 2, "bird": 1, "(no answer)": 0}
    assert route["metrics"]["per_class"]["bird"] == {"precision": 1.0, "recall": 0.3333,
                                                     "f1": 0.5, "support": 3}
    run = route["run"]
    assert (run["answered"], run["failed"], run["invalid"], run["images"]) == (10, 0, 0, 10)
    assert run["attempts_per_image"] == 1.0 and run["prompt_tokens"] == 16100
    assert run["latency_p50_s"] is not None and run["latency_p95_s"] >= run["latency_p50_s"]


def test_classify_text_table_shows_accuracy_and_confusion(tmp_path):
    names = draw_set(tmp_path / "photos")
    labels = write_csv(tmp_path / "labels.csv", names, "label", GOLD)
    with FakeServer(answering(SAID)) as server:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "-P", "openrouter", "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "0.7" in proc.stdout
    assert "confusion, openrouter" in proc.stdout


OCR_SAID = ["HELLO WORLD", "INVOICE 2047", "PAID IN FULL", "TOTAL 12.50", "THANK YOU",
            "SEE YOU SOON"]
# half exactly the answer; the rest 1, 1 and 2 character edits away from it
OCR_GOLD = ["HELLO WORLD", "INVOICE 2047", "PAID IN FULL", "TOTAL 12.60", "THANKS YOU",
            "SEE YOU SOONER"]


def test_ocr_half_exact_rest_k_edits_reports_the_exact_cer(tmp_path):
    names = draw_set(tmp_path / "scans", 6)
    labels = tmp_path / "truth.jsonl"
    labels.write_text("".join(json.dumps({"file_name": n, "text": t}) + "\n"
                              for n, t in zip(names, OCR_GOLD, strict=True)))
    with FakeServer(answering(OCR_SAID)) as server:
        proc = eval_cmd("ocr", str(tmp_path / "scans"), "--labels", str(labels),
                        "-P", "openrouter", "--base-url", server.url, "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)["routes"][0]["metrics"]
    edits, chars = 1 + 1 + 2, sum(len(t) for t in OCR_GOLD)
    assert m["char_edits"] == edits and m["ref_chars"] == chars
    assert m["cer"] == round(edits / chars, 6)
    assert m["exact"] == 0.5
    assert m["wer"] == round(3 / sum(len(t.split()) for t in OCR_GOLD), 6)


def test_ocr_ignore_case_forgives_only_case(tmp_path):
    names = draw_set(tmp_path / "scans", 2)
    labels = write_csv(tmp_path / "t.csv", names, "text", ["hello   world", "Invoice 2047"])
    with FakeServer(answering(OCR_SAID)) as server:
        base = ("ocr", str(tmp_path / "scans"), "--labels", str(labels), "-P", "openrouter",
                "--base-url", server.url, "--json")
        kept = json.loads(eval_cmd(*base).stdout)["routes"][0]["metrics"]
        ignored = json.loads(eval_cmd(*base, "--ignore-case").stdout)["routes"][0]["metrics"]
    assert kept["exact"] == 0.0 and kept["cer"] > 0
    assert ignored["exact"] == 1.0 and ignored["cer"] == 0.0
    assert ignored["normalisation"] == "whitespace collapsed, case ignored"


# the second route is right except on img-0, img-3, img-6, img-9: 6 of 10
SAID_B = ["dog", "dog", "bird", "bird", "dog", "bird", "dog", "dog", "bird", "dog"]


def two_routes(tmp_path, *extra: str):
    names = draw_set(tmp_path / "photos")
    labels = write_csv(tmp_path / "labels.csv", names, "label", GOLD)
    with FakeServer(answering(SAID)) as a, FakeServer(answering(SAID_B)) as b:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "--routes", "openrouter,deepinfra", *extra,
                        env={"LLAMAVIS_OPENROUTER_BASE_URL": a.url,
                             "LLAMAVIS_DEEPINFRA_BASE_URL": b.url})
    return proc, a, b


def test_routes_side_by_side_each_with_its_accuracy_and_the_disagreeing_images(tmp_path):
    proc, a, b = two_routes(tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    accuracy = {r["route"]: r["metrics"]["accuracy"] for r in report["routes"]}
    assert accuracy == {"openrouter": 0.7, "deepinfra": 0.6}
    differ = [f"img-{i}.png" for i in range(10) if SAID[i] != SAID_B[i]]
    assert report["disagreements"] == differ
    assert len(a.requests) == 10 and len(b.requests) == 10  # every image on every route


def test_routes_text_table_has_one_column_per_route(tmp_path):
    proc, _, _ = two_routes(tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    route_row = next(line for line in lines if line.strip().startswith("route "))
    assert route_row.split()[1:] == ["openrouter", "deepinfra"]
    accuracy_row = next(line for line in lines if line.strip().startswith("accuracy"))
    assert accuracy_row.split()[1:] == ["0.7", "0.6"]
    differ = ", ".join(f"img-{i}.png" for i in range(10) if SAID[i] != SAID_B[i])
    assert f"routes disagree on 7 image(s): {differ}" in proc.stdout


def test_a_route_that_fails_entirely_says_why_and_the_other_still_reports(tmp_path):
    names = draw_set(tmp_path / "photos", 4)
    labels = write_csv(tmp_path / "labels.csv", names, "label", GOLD[:4])
    with FakeServer(answering(SAID)) as a:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "--routes", "openrouter,novita", "--json",
                        env={"LLAMAVIS_OPENROUTER_BASE_URL": a.url})
    assert proc.returncode == 1
    routes = {r["route"]: r for r in json.loads(proc.stdout)["routes"]}
    assert routes["openrouter"]["error"] is None
    assert routes["openrouter"]["metrics"]["accuracy"] == 0.5  # cat, dog->cat, bird->dog, cat
    assert "NOVITA_API_KEY" in routes["novita"]["error"]  # no key set: that is why
    assert routes["novita"]["run"]["answered"] == 0


def test_html_page_names_every_image_with_a_thumbnail(tmp_path):
    page = tmp_path / "report.html"
    proc, _, _ = two_routes(tmp_path, "--html", str(page))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    for i in range(10):
        assert f"img-{i}.png" in text
    assert text.count("data:image/jpeg;base64,") == 10
    assert "openrouter" in text and "deepinfra" in text
    assert text.count("class='disagree'") == sum(a != b for a, b in zip(SAID, SAID_B, strict=True))


def smoke_answer(body: dict) -> str:
    prompt = json.dumps(body["messages"])
    if "multi-label" in prompt:
        return '["circle", "square"]'
    if "image classifier" in prompt:
        return "circle"
    if "OCR" in prompt:
        return "THE QUICK BROWN FOX"
    return '{"dots": 3}'


def test_smoke_runs_with_no_labels_of_the_users(tmp_path):
    with FakeServer(smoke_answer) as server:
        proc = eval_cmd("--smoke", "-P", "openrouter", "--base-url", server.url, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["smoke"] is True
    by_task = {t["task"]: t["routes"][0]["metrics"] for t in doc["tasks"]}
    assert set(by_task) == {"classify", "multi-classify", "ocr", "structured"}
    assert by_task["classify"]["accuracy"] == round(2 / 6, 4)  # two of six shapes are circles
    assert by_task["multi-classify"]["exact_set"] == round(1 / 6, 4)
    assert by_task["ocr"]["exact"] == 0.25
    assert by_task["structured"]["schema_valid"] == 1.0
    assert by_task["structured"]["per_field"]["dots"] == 0.25
    assert len(server.requests) == 20


def test_missing_labels_file_exits_2_naming_it(tmp_path):
    draw_set(tmp_path / "photos", 1)
    proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(tmp_path / "nope.csv"),
                    "-c", "cat,dog", "-P", "openrouter")
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr and "not found" in proc.stderr


def test_caption_exits_2_without_references(tmp_path):
    draw_set(tmp_path / "photos", 1)
    proc = eval_cmd("caption", str(tmp_path / "photos"), "-P", "openrouter")
    assert proc.returncode == 2
    assert "caption has no reference metric" in proc.stderr


def test_unmatched_rows_images_and_labels_outside_classes_are_counted_and_listed(tmp_path):
    names = draw_set(tmp_path / "photos", 4)
    labels = write_csv(tmp_path / "labels.csv", [*names[:3], "gone.png"], "label",
                       ["cat", "dog", "horse", "cat"])
    with FakeServer(answering(SAID)) as server:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "-P", "openrouter", "--base-url", server.url,
                        "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["rows_without_image"], report["images_without_row"]) == (1, 1)
    assert "gone.png: no such image among the inputs" in proc.stderr
    assert "img-3.png: no row in" in proc.stderr
    m = report["routes"][0]["metrics"]
    assert m["outside_classes"] == [{"image": "img-2.png", "label": "horse"}]
    assert "label 'horse' is not one of -c" in proc.stderr
    assert m["n"] == 2 and m["accuracy"] == 0.5  # img-0 cat right, img-1 dog -> cat wrong


def test_doctor_quality_runs_the_smoke_set_on_the_live_route(tmp_path):
    with FakeServer(smoke_answer) as server:
        proc = llamavis("doctor", "--probe", "--quality", "-P", "openrouter", "--base-url",
                        server.url, "--json", env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)[0]
    assert row["verdict"] == "live"
    assert row["quality"]["classify"] == {"accuracy": round(2 / 6, 4), "answered": 6,
                                          "images": 6, "error": None}
    assert row["quality"]["structured"]["schema_valid"] == 1.0
    assert len(server.requests) == 1 + 20  # the probe, then the smoke set
