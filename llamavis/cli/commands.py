"""The task commands: caption, detailed-caption, ocr, vqa, classify, multi-classify,
structured and prompt. Each is a thin adapter over ``execute``."""

from __future__ import annotations

from typing import Any

import typer

from . import options as o

EXAMPLES = {
    "caption": "llamavis caption examples/shapes.jpg\n\n"
               "find photos -name '*.jpg' | llamavis caption -j 8 --jsonl > captions.jsonl",
    "detailed-caption": "llamavis detailed-caption examples/shapes.jpg\n\n"
                        "llamavis detailed-caption -r photos/ --output-dir captions/",
    "ocr": "llamavis ocr examples/receipt.png\n\nllamavis ocr scans/ --jsonl > text.jsonl",
    "vqa": "llamavis vqa examples/shapes.jpg -q 'What colour is the ball?'",
    "classify": "llamavis classify examples/shapes.jpg -c indoor,outdoor\n\n"
                "llamavis classify shots/ -c ok,broken --json",
    "multi-classify": "llamavis multi-classify examples/shapes.jpg -c ball,sky,grass,car",
    "structured": "llamavis structured examples/receipt.png --field shop='shop name' "
                  "--field 'total number=amount paid'\n\n"
                  "llamavis structured receipts/ --schema receipt.schema.json --jsonl",
    "prompt": "llamavis prompt examples/sign.png -p 'What does this sign mean for a driver?'",
}

HELP = {
    "caption": "Write a short caption for each image.",
    "detailed-caption": "Describe each image in detail.",
    "ocr": "Transcribe the text in each image.",
    "vqa": "Answer a question about each image.",
    "classify": "Put each image in exactly one of your classes.",
    "multi-classify": "Tag each image with every class that applies (possibly none).",
    "structured": "Extract fields from each image as JSON that validates against a schema.",
    "prompt": "Send your own prompt with each image and print the raw answer.",
}

TASK_PARAMS: dict[str, list[o.Param]] = {
    "vqa": [o.QUESTION],
    "classify": [o.CLASSES],
    "multi-classify": [o.CLASSES],
    "structured": [o.FIELD, o.SCHEMA, o.SHOW_SCHEMA],
    "prompt": [o.PROMPT],
}


def _epilog(task: str) -> str:
    lines = EXAMPLES[task].split("\n\n")
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


def _body(task: str):
    def body(**opts: Any) -> None:
        from .execute import execute, show_schema

        if opts.get("show_schema"):
            raise typer.Exit(show_schema(task, opts))
        try:
            code = execute(task, opts)
        except BrokenPipeError:
            # The reader went away (`llamavis caption dir | head -1`): stop, quietly. Left
            # to typer, it would exit 1, which says an image failed.
            from .render import silence_stdout

            silence_stdout()
            code = 0
        raise typer.Exit(code)

    return body


def register(app: typer.Typer) -> None:
    """Add every task command to the app."""
    for task in EXAMPLES:
        params = [o.IMAGES, *TASK_PARAMS.get(task, []), *o.COMMON[1:]]
        app.command(task, help=HELP[task], epilog=_epilog(task), rich_help_panel="Tasks")(
            o.with_params(params, _body(task))
        )
