"""The options every task command shares, spelled once.

Commands are built from these lists so that ``--json``, ``-P`` or ``-j`` mean the
same thing everywhere (as sqlite-utils does with its shared option groups).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

Param = tuple[str, Any, Any]  # (name, Annotated type, default)

MODEL = "Model"
OUTPUT = "Output"
BATCH = "Batch"
INPUT = "Input"
ENGINE = "Local engine (-P transformers)"
DATASET = "Dataset captioning"

IMAGES: Param = (
    "images",
    Annotated[
        list[str] | None,
        typer.Argument(
            help="Image files, directories, http(s) URLs, or - for image bytes on stdin. "
            "With none and a piped stdin, stdin is read as a list of paths.",
            show_default=False,
            metavar="IMAGE...",
        ),
    ],
    None,
)


def option(name: str, typ: Any, default: Any, *decls: str, panel: str, **kw: Any) -> Param:
    return (name, Annotated[typ, typer.Option(*decls, rich_help_panel=panel, **kw)], default)


DATASET_OPTIONS: list[Param] = [
    option("sidecar", str | None, None, "--sidecar", panel=DATASET, metavar="txt",
         help="Write the caption beside each image: photo.jpg -> photo.txt (kohya, OneTrainer)."),
    option("sidecar_mode", str, "skip", "--sidecar-mode", panel=DATASET,
         metavar="skip|overwrite|append|prepend",
         help="When the caption file exists: skip the image (not asked), overwrite it, or add "
         "the new lines after or before it."),
    option("prefix", str, "", "--prefix", panel=DATASET, metavar="TEXT",
         help="Put TEXT before every caption (a trigger word: 'sks, ')."),
    option("suffix", str, "", "--suffix", panel=DATASET, metavar="TEXT", help="Put TEXT after every caption."),
    option("captions", int, 1, "--captions", panel=DATASET, min=1, max=100, metavar="N",
         help="N captions per image, each its own request and seed (--seed, +1, ...), one per line."),
    option("manifest", Path | None, None, "--manifest", panel=DATASET, metavar="FILE.csv|FILE.jsonl",
         help="Append file_name,text rows as results finish (Hugging Face imagefolder); "
         "images already listed are not asked again."),
    option("write_metadata", bool, False, "--write-metadata", panel=DATASET,
         help="Write the caption into the image: EXIF ImageDescription and XMP dc:description "
         "(extra llamavis[metadata])."),
]

# ocr only: documents of several pages, and pages too large for 1120 px.
PAGE_OPTIONS: list[Param] = [
    option("tiles", str | None, None, "--tiles", panel="Task", metavar="auto|N",
         help="Cut each page into tiles of at most 1120 px at full resolution and OCR them "
         "concurrently: auto (when shrinking to 1120 px would make its print illegible) or at "
         "least N strips."),
    option("dpi", int, 300, "--dpi", panel="Task", min=36, max=1200,
         help="Resolution PDF pages are rendered at (extra llamavis[pdf])."),
]

COMMON: list[Param] = [
    IMAGES,
    option("provider", str | None, None, "-P", "--provider", panel=MODEL, envvar="LLAMAVIS_PROVIDER",
         help="nvidia, cloudflare, deepinfra, langmart, azure, openrouter, novita, ollama, local, "
         "or transformers (in-process): pins one route. Default: every route with a key set, "
         "live first, an image moving on when its route cannot serve it."),
    option("model", str | None, None, "-m", "--model", panel=MODEL, envvar="LLAMAVIS_MODEL",
         help="11b (default), 90b, scout, maverick (Llama 4), a provider model id, or a Roboflow model_version like '11B (Regular) - OpenRouter'."),
    option("base_url", str | None, None, "--base-url", panel=MODEL, envvar="LLAMAVIS_BASE_URL",
         help="Send to this endpoint instead of the provider's (also LLAMAVIS_<PROVIDER>_BASE_URL)."),
    option("api_key", str | None, None, "--api-key", panel=MODEL,
         help="API key (visible in process lists: prefer the environment or `llamavis keys set`)."),
    option("template", str | None, None, "--template", panel=MODEL,
         help="Use another prompt template: a name from `llamavis prompts` or a .toml path."),
    option("var", list[str] | None, None, "--var", panel=MODEL, metavar="KEY=VALUE",
         help="Set a template $variable (repeatable)."),
    option("max_tokens", int | None, None, "--max-tokens", panel=MODEL, min=1,
         help="Longest answer, in tokens. Default: the template's."),
    option("temperature", float | None, None, "--temperature", panel=MODEL, min=0.0, max=2.0,
         help="Sampling temperature, 0.0 to 2.0. Default: the template's."),
    option("seed", int | None, None, "--seed", panel=MODEL, help="Sampling seed, where the provider takes one."),
    option("timeout", float, DEFAULT_TIMEOUT_S, "--timeout", panel=MODEL, min=1.0, help="Seconds allowed for one request. A failing image is asked up to --max-retries + 1 "
         "times: it can take --timeout x (--max-retries + 1) plus short waits (120 x 3 s at the defaults)."),
    option("max_retries", int, DEFAULT_RETRIES, "--max-retries", panel=MODEL, min=0,
         help="Retries of a failed request, and re-asks of an answer that does not validate."),
    option("json_out", bool, False, "--json", panel=OUTPUT,
         help="One JSON document: an object for one image, an array for several."),
    option("jsonl", bool, False, "--jsonl", panel=OUTPUT, help="One JSON object per image per line, as each finishes."),
    option("ordered", bool, False, "--ordered", panel=OUTPUT, help="Keep input order in --jsonl and text output."),
    option("output_dir", Path | None, None, "--output-dir", panel=OUTPUT,
         help="Write a sidecar per image: DIR/<name>.txt (.json for classify and structured)."),
    option("overwrite", bool, False, "--overwrite", panel=OUTPUT, help="Redo images whose sidecar already exists."),
    option("no_stream", bool, False, "--no-stream", panel=OUTPUT, help="Wait for the whole answer instead of streaming it."),
    option("dry_run", bool, False, "--dry-run", panel=OUTPUT,
         help="Print the requests that would be sent (key redacted), their number and cost; send nothing."),
    option("usage", bool, False, "--usage", panel=OUTPUT, help="Print token and cost totals to stderr at the end."),
    option("debug", bool, False, "--debug", panel=OUTPUT,
         help="Show requests, responses (key redacted) and tracebacks on stderr."),
    option("concurrency", int | None, None, "-j", "--concurrency", panel=BATCH, min=1, max=512,
         help="Requests in flight. Default: 4; with -P transformers 2 x --batch-size (16 without it)."),
    option("max_cost", float | None, None, "--max-cost", panel=BATCH, min=0.0, metavar="USD",
         help="Stop starting new requests once the batch would cost more than this."),
    option("no_cache", bool, False, "--no-cache", panel=BATCH, help="Ask again even for images already answered."),
    option("recursive", bool, False, "-r", "--recursive", panel=INPUT, help="Descend into subdirectories."),
    option("files_from", str | None, None, "-T", "--files-from", panel=INPUT, metavar="FILE",
         help="Read image paths from FILE, one per line (- for stdin)."),
    option("null", bool, False, "-0", "--null", panel=INPUT, help="Paths in --files-from/stdin are NUL-separated (find -print0)."),
    option("fallback", str | None, None, "--fallback", panel=MODEL, envvar="LLAMAVIS_FALLBACK",
         metavar="ROUTE[,ROUTE...]",
         help="Routes to ask when the provider cannot serve an image (model not served, 5xx, "
         "unreachable, 402, key rejected): provider or provider:model, e.g. nvidia,cloudflare."),
    option("no_fallback", bool, False, "--no-fallback", panel=MODEL,
         help="With no -P: ask only the first configured route; never move an image on."),
    option("device", str | None, None, "--device", panel=ENGINE, metavar="auto|cuda|mps|cpu",
         help="Where the model runs. Default: auto (CUDA, else Apple MPS, else CPU)."),
    option("dtype", str | None, None, "--dtype", panel=ENGINE, metavar="auto|bfloat16|float16|float32",
         help="Weight precision. Default: auto (bfloat16 on CUDA, float16 on MPS, float32 on CPU)."),
    option("load_in_4bit", bool, False, "--load-in-4bit", panel=ENGINE,
         help="Load the weights in 4 bits (CUDA with bitsandbytes): about a quarter of the memory."),
    option("batch_size", int | None, None, "--batch-size", panel=ENGINE, min=1, max=256,
         help="Images per generate call. Default: 8 on CUDA, 4 on MPS and CPU."),
    *DATASET_OPTIONS,
]

QUESTION = option("question", str | None, None, "-q", "--question", panel="Task", help="The question to ask about each image.")
CLASSES = option("classes", list[str] | None, None, "-c", "--classes", panel="Task", metavar="A,B,C",
               help="Comma-separated classes (repeatable).")
PROMPT = option("prompt", str | None, None, "-p", "--prompt", panel="Task", help="Your prompt, sent after the image.")
FIELD = option("field", list[str] | None, None, "--field", panel="Task", metavar="KEY=DESCRIPTION",
             help="A field to extract (repeatable); 'KEY int=DESCRIPTION' types it.")
SCHEMA = option("schema", str | None, None, "--schema", panel="Task", metavar="FILE_OR_JSON",
              help="A JSON Schema file or inline JSON, or concise 'name, age int: years'.")
SHOW_SCHEMA = option("show_schema", bool, False, "--show-schema", panel="Task",
                   help="Print the JSON Schema built from --field/--schema and exit.")


def with_params(params: list[Param], body: Callable[..., Any]) -> Callable[..., Any]:
    """A function whose signature is `params`, calling body(**kwargs): shared options once."""

    def command(**kwargs: Any) -> Any:
        return body(**kwargs)

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t) for n, t, d in params]
    )
    command.__annotations__ = {n: t for n, t, _ in params}
    return command
