"""``llamavis cache path | stats | clear``: find, measure and empty the result cache."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from llamavis.errors import ConfigError, UsageError

cache_app = typer.Typer(
    help="Find, measure or empty the result cache.\n\nExample:  llamavis cache stats",
    no_args_is_help=True,
    # A bool for the group's own unset --help, so that `cache CMD --help` does not import
    # pydantic to coerce it (see the default_map in cli/main.py).
    context_settings={"default_map": {"help": False}},
)


@cache_app.command("path")
def path_cmd() -> None:
    """Print the path of the result cache (an SQLite file).

    Example:  llamavis cache path
    """
    from llamavis.store.cache import default_path

    sys.stdout.write(f"{default_path()}\n")


@cache_app.command("stats")
def stats_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Show how many results are cached, the size on disk, and the oldest and newest.

    Example:  llamavis cache stats --json
    """
    from llamavis.store.admin import stats

    found = stats()
    if json_out:
        sys.stdout.write(json.dumps(found.to_dict(), indent=2) + "\n")
        return
    rows = [("path", str(found.path)), ("entries", f"{found.entries:,}"),
            ("size", _size(found.size_bytes)), ("oldest", _when(found.oldest)),
            ("newest", _when(found.newest))]
    sys.stdout.write("".join(f"{name:<8} {value}\n" for name, value in rows))


@cache_app.command("clear")
def clear_cmd(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", min=0.0, metavar="DAYS",
        help="Delete only results stored more than DAYS days ago.")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask (needed when standard input is not a terminal).")] = False,
) -> None:
    """Delete cached results (all, or those older than --older-than DAYS); asks first.

    Example:  llamavis cache clear --older-than 30
    """
    from llamavis.store.admin import clear, count_older
    from llamavis.store.cache import default_path

    path = default_path()
    try:
        count: int | None = count_older(older_than)
    except ConfigError:
        if older_than is not None:
            raise
        count = None  # too damaged to read: clearing deletes the file
    if count is None:
        what = "the damaged cache file"
    else:
        what = f"{count:,} cached result(s)"
        what += f" older than {older_than:g} days" if older_than is not None else ""
    if count == 0 and (older_than is not None or not path.exists()):
        sys.stderr.write(f"llamavis: nothing to clear in {path}\n")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"cache clear would delete {what}; add --yes to confirm "
                             "(standard input is not a terminal to ask on)")
        if not typer.confirm(f"Delete {what} from {path}?", default=False, err=True):
            sys.stderr.write("llamavis: nothing was deleted\n")
            return
    deleted = clear(older_than)
    sys.stderr.write(f"llamavis: deleted {deleted:,} cached result(s) from {path}\n")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return ""


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    days = (time.time() - epoch) / 86400
    ago = "today" if days < 1 else f"{days:.0f} day{'s' if days >= 1.5 else ''} ago"
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(epoch))} ({ago})"


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache", rich_help_panel="Setup")
