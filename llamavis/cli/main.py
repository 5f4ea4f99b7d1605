"""The ``llamavis`` command: the Typer app and the one place exceptions become exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from llamavis.__about__ import __version__
from llamavis.errors import ExitCode, LlamavisError

app = typer.Typer(
    name="llamavis",
    no_args_is_help=True,
    # The default_map gives unset flags a bool: typer >= 0.2x otherwise coerces them through
    # pydantic, which `llamavis CMD --help` would import for nothing (tests/test_help.py).
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                      "default_map": {"help": False, "install_completion": False,
                                      "show_completion": False, "keys": {"help": False}}},
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"llamavis {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Ask Llama 3.2 Vision about images: captions, OCR, questions, classes, structured JSON.

    Example:  llamavis caption examples/shapes.jpg

    Results go to stdout; progress and errors to stderr. Exit status: 0 all images
    succeeded, 1 some failed, 2 usage error, 3 configuration or authentication
    problem, 130 interrupted.
    """


def _register() -> None:
    from llamavis.cli import admin, agree, cache_cmd, commands, doctor, roboflow
    from llamavis.cli import eval as eval_cmd

    commands.register(app)
    admin.register(app)
    roboflow.register(app)
    app.command("doctor", rich_help_panel="Setup")(doctor.doctor)
    app.command("agree", rich_help_panel="Setup")(agree.agree)
    cache_cmd.register(app)
    eval_cmd.register(app)


_register()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or bool(os.environ.get("LLAMAVIS_DEBUG"))


def _fail(message: str, code: int) -> int:
    from llamavis.cli.output.render import one_line
    from llamavis.urls import scrubbed

    sys.stderr.write(f"llamavis: error: {scrubbed(one_line(message))}\n")
    return code


def _parser_error() -> type[Exception]:
    """The class of the parser's usage errors, by public names only.

    It is click's ClickException, the documented base of ``typer.BadParameter``; typer
    < 0.26 runs on the click package, later typer on a copy of click of its own, so the
    class is taken from typer's public BadParameter rather than imported from either.
    """
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def run(argv: list[str] | None = None) -> int:
    """Entry point of the console script: run the app, map exceptions to exit codes."""
    argv = sys.argv[1:] if argv is None else argv
    _reopen_closed_streams()
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="llamavis", standalone_mode=False)
        code = int(rv) if isinstance(rv, int) else ExitCode.OK
    except typer.Exit as exc:
        code = exc.exit_code
    except _parser_error() as exc:  # usage errors from the parser
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]
        code = ExitCode.USAGE
    except (KeyboardInterrupt, typer.Abort):
        code = _fail("interrupted", ExitCode.INTERRUPTED)
    except LlamavisError as exc:
        if _debug_requested(argv):
            _traceback()
        code = _fail(str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the one place an unexpected error is reported
        if _debug_requested(argv):
            _traceback()
            code = _fail(f"internal error: {exc!r}", ExitCode.FAILED)
        else:
            code = _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                         ExitCode.FAILED)
    _flush()
    return code


def _reopen_closed_streams() -> None:
    """A standard stream closed by the caller (`<&-`, `>&-`) is None in Python: make it
    /dev/null, read as empty and written to nowhere, rather than fail on its first use."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))  # noqa: SIM115 - kept for the process


def _traceback() -> None:
    import traceback

    from llamavis.urls import scrubbed

    # Never with local variables: a key may be one of them; never a URL's password.
    sys.stderr.write(scrubbed(traceback.format_exc()))


def _flush() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from llamavis.cli.output.render import silence_stdout

        silence_stdout()


def entry() -> None:
    sys.exit(run())
