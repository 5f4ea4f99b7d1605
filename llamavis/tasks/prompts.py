"""The prompt-template registry: one TOML file per task, user files override built-ins.

Built-in templates are the top-level ``prompts/*.toml``, shipped inside the wheel
as ``llamavis/_prompts``. A file of the same name in ``<config dir>/prompts/``
overrides a built-in; ``--template`` also takes a path to a ``.toml`` file.

Llama 3.2 Vision's chat template rejects a system message beside an image, so a
template's ``instructions`` are rendered into the user turn, before its text.
"""

from __future__ import annotations

import string
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llamavis.errors import ConfigError, UsageError
from llamavis.store.paths import config_dir


class Defaults(BaseModel):
    """Generation defaults a template suggests; command-line options win."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)


class Template(BaseModel):
    """One prompt template."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    instructions: str = ""
    user: str
    variables: list[str] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    source: str = Field(default="", exclude=True)

    def render(self, variables: dict[str, str]) -> str:
        """The text of the user turn: instructions, then the user text, $variables filled."""
        missing = [v for v in self.variables if not str(variables.get(v, "")).strip()]
        if missing:
            raise UsageError(f"template {self.name!r} needs ${missing[0]}" + _hint(missing[0]))
        text = _substitute(self.user, variables, self.name)
        instructions = _substitute(self.instructions, variables, self.name).strip()
        return f"{instructions}\n\n{text.strip()}" if instructions else text.strip()


_OPTION_HINTS = {
    "question": " (give it with -q/--question)",
    "classes": " (give them with -c/--classes)",
    "prompt": " (give it with -p/--prompt)",
    "fields": " (give them with --field or --schema)",
}


def _hint(var: str) -> str:
    return _OPTION_HINTS.get(var, f" (give it with --var {var}=VALUE)")


_PLACEHOLDER = r"""
\$(?:
  (?P<escaped>\$) |
  (?P<named>(?a:[_a-z][_a-z0-9]*)) |
  {(?P<braced>(?a:[_a-z][_a-z0-9]*))} |
  (?P<invalid>(?!))
)
"""


class _Text(string.Template):
    """``$name`` and ``${name}`` are placeholders and ``$$`` is a dollar sign; any other
    ``$`` ("above $5") is text, not the error string.Template makes of it."""

    # string.Template compiles this str when the class is made; typeshed types the result.
    pattern = _PLACEHOLDER  # type: ignore[assignment]


def _substitute(text: str, variables: dict[str, str], name: str) -> str:
    try:
        return _Text(text).substitute(variables)
    except KeyError as exc:
        var = exc.args[0]
        raise UsageError(f"template {name!r} uses ${var}, which has no value" + _hint(var)) from None
    except ValueError as exc:
        raise ConfigError(f"template {name!r} is malformed: {exc}") from None


def builtin_dir() -> Path:
    """Where the built-in templates are: inside the wheel, or the source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "_prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "prompts"


def user_dir() -> Path:
    return config_dir() / "prompts"


def load_file(path: Path) -> Template:
    """Parse and validate one template file; ConfigError naming the file if it is bad."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read template {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"template {path} is not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    try:
        template = Template.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"template {path}: {where}: {first['msg']}") from None
    template.source = str(path)
    return template


def available() -> dict[str, Path]:
    """Every template name and the file it comes from; user files override built-ins."""
    found: dict[str, Path] = {}
    for directory in (builtin_dir(), user_dir()):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found[path.stem] = path
    return found


def get(name_or_path: str) -> Template:
    """A template by registry name, or from a .toml file path."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".toml"):
        if candidate.is_file():
            return load_file(candidate)
        raise UsageError(f"no such template file {name_or_path!r}",
                         hint="give a .toml file or a name from `llamavis prompts`")
    files = available()
    if name_or_path not in files:
        known = ", ".join(sorted(files))
        raise UsageError(f"unknown template {name_or_path!r}; known templates: {known}")
    return load_file(files[name_or_path])


def is_builtin(template: Template) -> bool:
    return Path(template.source).parent == builtin_dir()
