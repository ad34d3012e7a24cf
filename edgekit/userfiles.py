"""The one place edgekit reads a file a user named, and prepares a folder it will write into.

Every OS or decoding failure becomes an EdgekitError that names the file as the
user gave it (with the option that named it: `--labels x.txt`), says what went
wrong and what was expected; no UnicodeDecodeError, IsADirectoryError or YAML
traceback reaches a user.

    text = read_text("labels.txt", "one class name per line", option="--labels")
    prepare_parent(Path("dist/model"), option="--out")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError


def describe(path: str | os.PathLike, option: str | None = None) -> str:
    """How a message names a file: `--labels x.txt`, or just the path."""
    return f"{option} {path}" if option else str(path)


def _os_error(path, option, exc: OSError, expected: str, verb: str = "read") -> EdgekitError:
    name = describe(path, option)
    if isinstance(exc, FileNotFoundError):
        return EdgekitError(f"{name} does not exist (expected {expected}).")
    if isinstance(exc, IsADirectoryError):
        return EdgekitError(f"{name} is a directory; expected {expected}.")
    if isinstance(exc, NotADirectoryError):
        return EdgekitError(f"{name}: a part of that path is a file, not a directory (expected {expected}).")
    if isinstance(exc, PermissionError):
        return EdgekitError(f"{name} cannot be {verb}: permission denied.")
    return EdgekitError(f"{name} cannot be {verb} ({exc.strerror or exc}).")


def require_file(path: str | os.PathLike, expected: str, option: str | None = None) -> Path:
    """`path` as a Path, if it is a regular file; otherwise say what it is instead."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise EdgekitError(f"{describe(path, option)} is a directory; expected {expected}.")
    if path.exists():
        raise EdgekitError(f"{describe(path, option)} is not a regular file; expected {expected}.")
    raise EdgekitError(f"{describe(path, option)} does not exist (expected {expected}).")


def read_bytes(path: str | os.PathLike, expected: str, option: str | None = None) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _os_error(path, option, exc, expected) from None


def read_text(path: str | os.PathLike, expected: str, option: str | None = None) -> str:
    """A UTF-8 text file (a leading byte-order mark is dropped, as Windows editors write one)."""
    data = read_bytes(path, expected, option)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EdgekitError(f"{describe(path, option)} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                           f"{exc.start} is not valid UTF-8); expected {expected}. Save the file as UTF-8 "
                           "text.") from None


def read_lines(path: str | os.PathLike, expected: str, option: str | None = None) -> list[str]:
    """The file's lines, unstripped, without line ends."""
    return read_text(path, expected, option).splitlines()


def read_yaml(path: str | os.PathLike, expected: str, option: str | None = None) -> Any:
    import yaml

    text = read_text(path, expected, option)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EdgekitError(f"{describe(path, option)} is not valid YAML ({problem}{where}); "
                           f"expected {expected}.") from None


def read_json(path: str | os.PathLike, expected: str, option: str | None = None) -> Any:
    text = read_text(path, expected, option)
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and recursion depth on absurd nesting
        raise EdgekitError(f"{describe(path, option)} is not valid JSON ({exc}); expected {expected}.") from None
    except RecursionError:
        raise EdgekitError(f"{describe(path, option)} is nested too deeply to be {expected}.") from None


def check_creatable(path: str | os.PathLike, option: str | None = None,
                    named: str | os.PathLike | None = None) -> Path:
    """Before any work: `path` could be created as a folder (no file stands where a parent folder must be)."""
    path = Path(path)
    name = describe(named if named is not None else path, option)
    for ancestor in (path, *path.parents):
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                what = "is a file" if ancestor.is_file() else "is not a directory"
                raise EdgekitError(f"{name}: {ancestor} {what}, so the folder cannot be created there. "
                                   f"Choose {option or 'a path'} whose parent folders are directories.")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise EdgekitError(f"{name}: the folder {ancestor} is not writable. Choose {option or 'a path'} "
                                   "in a folder you can write to.")
            break
    return path


def prepare_dir(path: str | os.PathLike, option: str | None = None, named: str | os.PathLike | None = None) -> Path:
    """Create `path` (and its parents) as a directory, or say in one paragraph why it cannot be.

    `named` is what the user typed when `path` is derived from it (the parent of an --out)."""
    path = check_creatable(path, option, named)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgekitError(f"{describe(named if named is not None else path, option)}: the folder {path} cannot be "
                           f"created ({exc.strerror or exc}). Choose {option or 'a path'} in a folder you can "
                           "write to.") from None
    return path


def prepare_parent(path: str | os.PathLike, option: str | None = None) -> Path:
    """Make sure the folder an output file or directory goes into exists; returns `path`."""
    path = Path(path)
    prepare_dir(path.parent, option, named=path)
    return path
