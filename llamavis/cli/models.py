"""``llamavis models``: which provider serves which model, or what one server really serves."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer


def models(
    provider: Annotated[str | None, typer.Option("-P", "--provider", help="Only this provider; "
                                                 "local and ollama ask the server.")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", envvar="LLAMAVIS_BASE_URL",
        help="Ask this server what it serves (GET /models).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="The server's key, if any.")
                       ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                        ] = False,
) -> None:
    """List which provider serves which model, or what one server really serves.

    Aliases: 11b and 90b (Llama 3.2 Vision), scout and maverick (Llama 4), with each
    provider's id and what is known about the route. With --base-url, -P local or
    -P ollama it asks the server (GET /models) and marks the Llama 3.2 Vision ids.

    Example:  llamavis models --provider ollama
    """
    from llamavis.backends.providers import get_provider

    if base_url or provider in ("local", "ollama"):
        spec = get_provider(provider or "local")
        _served(spec, base_url, api_key, json_out)
        return
    _table(provider, json_out)


def _served(spec: Any, base_url: str | None, api_key: str | None, json_out: bool) -> None:
    import asyncio  # not on the path of --help

    from llamavis.cli.output.render import note
    from llamavis.providers.served import served_models
    rows = asyncio.run(served_models(spec, base_url, api_key))
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for row in rows:
        mark = "  <- Llama 3.2 Vision" if row["llama_3_2_vision"] else (
            f"  ({row['family']})" if row["family"] else "")
        sys.stdout.write(f"{row['model']}{mark}\n")
    where = rows[0]["base_url"] if rows else spec.name
    if not any(row["llama_3_2_vision"] for row in rows):
        hint = ("`ollama pull llama3.2-vision` (Ollama 0.30 and later cannot run it)"
                if spec.name == "ollama" else "`llamavis providers` shows the local stacks that do")
        note(f"{where} serves no Llama 3.2 Vision model: {hint}")


def _table(provider: str | None, json_out: bool) -> None:
    from llamavis.backends.models import profile_for
    from llamavis.backends.providers import PROVIDERS, get_provider
    from llamavis.cli.admin import _emit
    from llamavis.providers.facts import GONE, status

    specs = [get_provider(provider)] if provider else list(PROVIDERS.values())
    rows = []
    for spec in specs:
        for alias, model_id in spec.models.items():
            price = spec.price(model_id)
            known = status(spec.name, alias)
            row: dict[str, object] = {
                "provider": spec.name, "alias": alias, "family": profile_for(alias).title,
                "model": model_id, "status": known.short(),
                "checked": f"{known.checked} ({known.age_days()} d ago)",
                "usd_per_mtok_in_out": f"{price[0]}/{price[1]}" if price else "-"}
            if json_out:
                row |= known.to_dict()
            rows.append(row)
    _emit(rows, json_out, ["provider", "alias", "family", "model", "status", "checked",
                           "usd_per_mtok_in_out"])
    if not json_out and not provider:
        gone = "; ".join(f"{name} {s.short()}" for name, s in GONE.items())
        sys.stderr.write(f"gone elsewhere: {gone}\n"
                         "`llamavis doctor` says which routes you can reach right now\n")
