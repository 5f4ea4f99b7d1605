"""Commands about llamavis itself: providers, models, prompts, keys."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from llamavis.urls import shown

keys_app = typer.Typer(
    help="Manage stored API keys (never printed).\n\nExample:  llamavis keys set openrouter",
    no_args_is_help=True,
)


def _emit(rows: list[dict], as_json: bool, columns: list[str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    sys.stdout.write("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip() + "\n")
    for row in rows:
        sys.stdout.write("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip() + "\n")


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def providers(json_out: JsonFlag = False) -> None:
    """List providers, their endpoints, key variables, whether a key is set, and local servers.

    Example:  llamavis providers
    """
    from llamavis.backends.providers import (
        PROVIDERS,
        base_url_env,
        env_key,
        resolve_base_url,
    )
    from llamavis.errors import ConfigError
    from llamavis.providers.facts import LOCAL_STACKS
    from llamavis.store.paths import load_keys

    stored = load_keys()
    rows = []
    for spec in PROVIDERS.values():
        source = "env" if env_key(spec) else ("keys file" if spec.name in stored else "")
        try:
            endpoint = resolve_base_url(spec)
        except ConfigError as exc:  # Azure's own endpoint, Cloudflare's account: not set
            endpoint = f"({exc.hint})" if exc.hint else spec.base_url
        row: dict[str, Any] = {
            "provider": spec.name,
            "base_url": shown(endpoint),  # never a password or key from LLAMAVIS_BASE_URL
            "key_env": " or ".join(spec.key_envs) or "-",
            "key": f"set ({source})" if source else ("not needed" if not spec.key_required else "not set"),
            "json_mode": spec.json_mode or "prompt only",
        }
        if json_out:
            row["base_url_env"] = " or ".join((base_url_env(spec), *spec.base_url_envs))
            row["local_stacks"] = [vars(s) for s in LOCAL_STACKS if s.provider == spec.name]
        rows.append(row)
    _emit(rows, json_out, ["provider", "base_url", "key_env", "key", "json_mode"])
    if not json_out:
        out = sys.stdout.write
        out("\nEvery endpoint can be set per provider: LLAMAVIS_<PROVIDER>_BASE_URL.\n"
            "Local servers that still run Llama 3.2 Vision (then -P PROVIDER --base-url URL -m MODEL):\n")
        for stack in LOCAL_STACKS:
            out(f"  {stack.name}: {stack.command}\n    -P {stack.provider} --base-url "
                f"{stack.base_url} -m {stack.model}  ({stack.note})\n")


def prompts_cmd(
    name: Annotated[str | None, typer.Argument(help="Show this template in full.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List the prompt templates, or show one. Files in the config dir's prompts/ override them.

    Example:  llamavis prompts classify
    """
    from llamavis.tasks import prompts

    if name:
        tpl = prompts.get(name)
        if json_out:
            sys.stdout.write(json.dumps({**tpl.model_dump(), "source": tpl.source}, indent=2) + "\n")
            return
        sys.stdout.write(f"# {tpl.name}: {tpl.description}\n# from {tpl.source}\n")
        sys.stdout.write(f"variables: {', '.join('$' + v for v in tpl.variables) or '(none)'}\n")
        sys.stdout.write(f"defaults: {tpl.defaults.model_dump(exclude_none=True)}\n\n")
        if tpl.instructions:
            sys.stdout.write(f"{tpl.instructions}\n\n")
        sys.stdout.write(f"{tpl.user}\n")
        return
    rows = []
    for tname in sorted(prompts.available()):
        tpl = prompts.get(tname)
        rows.append({"name": tname, "origin": "built-in" if prompts.is_builtin(tpl) else "user",
                     "description": tpl.description})
    _emit(rows, json_out, ["name", "origin", "description"])
    if not json_out:
        sys.stderr.write(f"user templates: {prompts.user_dir()}\n")


@keys_app.command("set")
def keys_set(
    provider: Annotated[str, typer.Argument(help="openrouter, novita, deepinfra, cloudflare, "
                                              "azure, langmart, local or ollama.")],
    value: Annotated[str | None, typer.Option("--value", help="The key (else read from stdin or a prompt).",
                                                 hidden=True)] = None,
) -> None:
    """Store a provider's API key in the keys file (mode 0600).

    Example:  llamavis keys set openrouter
    """
    from llamavis.backends.providers import get_provider
    from llamavis.errors import UsageError
    from llamavis.store.paths import store_key

    spec = get_provider(provider)
    key = value
    if key is None:
        if sys.stdin.isatty():
            key = typer.prompt(f"API key for {spec.name}", hide_input=True)
        else:
            key = sys.stdin.readline()
    key = (key or "").strip()  # a pasted key often carries a newline or a space
    if not key:
        raise UsageError("no key given: type it at the prompt or pipe it on stdin")
    if any(c.isspace() for c in key):
        raise UsageError(f"the {spec.name} key has whitespace inside it: an API key never does",
                         hint="paste the key alone (one line, no spaces)")
    path = store_key(spec.name, key)
    sys.stderr.write(f"llamavis: stored the {spec.name} key in {path}\n")


@keys_app.command("delete")
def keys_delete(
    provider: Annotated[str, typer.Argument(help="The provider whose stored key to delete.")],
) -> None:
    """Delete a provider's key from the keys file (a key in the environment is untouched).

    Example:  llamavis keys delete openrouter
    """
    from llamavis.backends.providers import get_provider
    from llamavis.store.paths import delete_key

    spec = get_provider(provider)
    path = delete_key(spec.name)
    if path is None:
        sys.stderr.write(f"llamavis: no {spec.name} key is stored: nothing to delete\n")
        return
    sys.stderr.write(f"llamavis: deleted the {spec.name} key from {path}\n")


@keys_app.command("list")
def keys_list() -> None:
    """List the providers that have a stored key (the keys themselves are never shown).

    Example:  llamavis keys list
    """
    from llamavis.store.paths import load_keys

    for name in sorted(load_keys()):
        sys.stdout.write(name + "\n")


@keys_app.command("path")
def keys_path_cmd() -> None:
    """Print the path of the keys file.

    Example:  llamavis keys path
    """
    from llamavis.store.paths import keys_path

    sys.stdout.write(str(keys_path()) + "\n")


def register(app: typer.Typer) -> None:
    from llamavis.cli import models as models_cmd

    app.command("providers", rich_help_panel="Setup")(providers)
    app.command("models", rich_help_panel="Setup")(models_cmd.models)
    app.command("prompts", rich_help_panel="Setup")(prompts_cmd)
    app.add_typer(keys_app, name="keys", rich_help_panel="Setup")
