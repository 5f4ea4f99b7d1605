"""``llamavis agree PROVIDER``: accept a model licence a provider asks for, once per account."""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def agree(
    provider: Annotated[str, typer.Argument(help="The provider that asks for it: cloudflare.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept without asking (needed "
                                      "when standard input is not a terminal).")] = False,
    base_url: Annotated[str | None, typer.Option("--base-url", envvar="LLAMAVIS_BASE_URL",
                                                 help="The provider's endpoint, if not its default "
                                                 "(also LLAMAVIS_<PROVIDER>_BASE_URL).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key (prefer the "
                                                "environment or `llamavis keys set`).")] = None,
    model: Annotated[str | None, typer.Option("-m", "--model", help="The model whose licence "
                                              "to accept (default 11b).")] = None,
) -> None:
    """Accept Meta's Llama 3.2 licence on Cloudflare Workers AI, once per account.

    Shows the licence and acceptable-use links, asks, sends the agreement (the prompt
    "agree") once and remembers it. llamavis never agrees on its own.

    Example:  llamavis agree cloudflare
    """
    from llamavis.backends.client import checked_base_url
    from llamavis.backends.providers import get_provider
    from llamavis.providers.licences import agreed_on, licence_for, send_agreement
    from llamavis.providers.served import route_of

    spec = get_provider(provider)
    licence = licence_for(spec.name)
    route = route_of(spec.name, model, base_url, api_key)
    endpoint, key, model_id = checked_base_url(route.base_url), route.api_key, route.model_id
    when = agreed_on(spec.name, endpoint)
    if when:
        _say(f"this {spec.name} account agreed on {when} (recorded here); nothing sent")
        return
    _say(f"{spec.name} serves {model_id} only once the account accepts {licence.name}:")
    for url in licence.urls:
        sys.stderr.write(f"  {url}\n")
    if not yes and not _confirmed(licence.name):
        _say("not accepted; nothing was sent")
        raise typer.Exit(1)
    import asyncio  # not on the path of --help
    answer = asyncio.run(send_agreement(spec, base_url=endpoint, api_key=key, model_id=model_id))
    _say(f"agreed; {spec.name} answered: {answer.strip()[:200]}")


def _confirmed(name: str) -> bool:
    from llamavis.errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError("standard input is not a terminal, so llamavis cannot ask",
                         hint="read the licence, then pass --yes to accept it")
    return typer.confirm(f"Do you accept {name}?", default=False, err=True)


def _say(line: str) -> None:
    from llamavis.urls import scrubbed

    sys.stderr.write(f"llamavis: {scrubbed(line)}\n")  # a server's answer may quote a URL
