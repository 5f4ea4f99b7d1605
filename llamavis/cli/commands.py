"""The task commands, one per entry of the task table (llamavis.tasks.specs).

Each is a thin adapter over ``execute``; its help, examples and task options all come
from its ``TaskSpec``.
"""

from __future__ import annotations

from typing import Any

import typer

from llamavis.cli import options as o
from llamavis.tasks import specs as taskspecs

# The command-line options behind each task parameter a TaskSpec names.
PARAM_OPTIONS: dict[str, list[o.Param]] = {
    "question": [o.QUESTION],
    "classes": [o.CLASSES],
    "prompt": [o.PROMPT],
    "schema": [o.FIELD, o.SCHEMA, o.SHOW_SCHEMA],
}


# Options one command alone has (ocr reads documents page by page, tile by tile).
COMMAND_OPTIONS: dict[str, list[o.Param]] = {"ocr": o.PAGE_OPTIONS}


def task_params(spec: taskspecs.TaskSpec) -> list[o.Param]:
    """The task options of one task's command, in the order its spec lists them."""
    own = COMMAND_OPTIONS.get(spec.name, [])
    return [param for name in spec.params for param in PARAM_OPTIONS[name]] + own


def _epilog(spec: taskspecs.TaskSpec) -> str:
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in spec.examples)


def _body(task: str):
    def body(**opts: Any) -> None:
        from llamavis.cli.execute import execute, show_schema

        if opts.get("show_schema"):
            raise typer.Exit(show_schema(task, opts))
        try:
            code = execute(task, opts)
        except BrokenPipeError:
            # The reader went away (`llamavis caption dir | head -1`): stop, quietly. Left
            # to typer, it would exit 1, which says an image failed.
            from llamavis.cli.output.render import silence_stdout

            silence_stdout()
            code = 0
        raise typer.Exit(code)

    return body


def register(app: typer.Typer) -> None:
    """Add a command for every task in the table."""
    for spec in taskspecs.TASKS.values():
        params = [o.IMAGES, *task_params(spec), *o.COMMON[1:]]
        app.command(spec.name, help=spec.help, epilog=_epilog(spec), rich_help_panel="Tasks")(
            o.with_params(params, _body(spec.name))
        )
