"""Where llamavis keeps its files, and the stored API keys.

Directories come from platformdirs (XDG on Linux) and can be moved with
``LLAMAVIS_CONFIG_DIR`` / ``LLAMAVIS_CACHE_DIR``. Keys live in ``keys.json`` of
mode 0600 in the config dir, as llm does; they are never printed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from llamavis.errors import ConfigError


def config_dir() -> Path:
    """The user's llamavis config directory (templates, keys)."""
    env = os.environ.get("LLAMAVIS_CONFIG_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_path

    return user_config_path("llamavis", appauthor=False)


def cache_dir() -> Path:
    """The user's llamavis cache directory (the result store)."""
    env = os.environ.get("LLAMAVIS_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path("llamavis", appauthor=False)


def keys_path() -> Path:
    return config_dir() / "keys.json"


_NOTE = "// Stored by `llamavis keys set`. Do not share this file."


def load_keys() -> dict[str, str]:
    """Stored keys by provider name; {} when there is no keys file."""
    path = keys_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read keys file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        text = ""  # not UTF-8: reported as not valid JSON below
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(
            f"keys file {path} is not valid JSON", hint="fix it or remove it and run `llamavis keys set`"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"keys file {path} must hold a JSON object")
    keys = {k: v for k, v in data.items() if not k.startswith("//")}
    for name, value in keys.items():
        if not isinstance(value, str):  # never str() it: null would become the key "None"
            raise ConfigError(f"keys file {path}: the key for {name!r} must be a string",
                              hint=f"fix it, or remove the entry and run `llamavis keys set {name}`")
    return keys


def store_key(provider: str, key: str) -> Path:
    """Save a key, creating the keys file with mode 0600 (atomically)."""
    keys = load_keys()
    keys[provider] = key
    return _save_keys(keys)


def delete_key(provider: str) -> Path | None:
    """Remove a provider's stored key (atomically): the keys file, or None if none was stored."""
    keys = load_keys()
    if keys.pop(provider, None) is None:
        return None
    return _save_keys(keys)


def _save_keys(keys: dict[str, str]) -> Path:
    path = keys_path()
    payload = {"//": _NOTE, **dict(sorted(keys.items()))}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(payload, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write keys file {path}: {exc.strerror or exc}") from None
    return path


def _write_private(path: Path, text: str) -> None:
    """Replace path with text, atomically, readable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


def private_store(path: Path) -> None:
    """Make ``path``'s folder 0700 and the SQLite store (with its -wal and -shm) 0600 before
    anything is written: the cache holds OCR text and answers about private images.

    An existing folder is tightened too, unless it is a shared one (sticky, like /tmp) or
    not ours; a file that cannot be changed is left as it is (the cache never fails a run).
    """
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(folder, 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # sqlite opens it as it is
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        _tighten(file, 0o600)


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        owner = os.getuid() if hasattr(os, "getuid") else info.st_uid
        if info.st_mode & 0o1000 or info.st_uid != owner:
            return  # a shared folder such as /tmp, or someone else's: not ours to change
        if info.st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except (FileNotFoundError, PermissionError):
        return
