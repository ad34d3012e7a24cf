"""Options more than one command declares: KEY=VALUE flags and the device flags of validate and bench."""

from __future__ import annotations

from typing import Any

import typer

from edgekit.errors import EdgekitError

# The example each flag's error shows; the wording ("for example" / "e.g.") is each flag's own, pinned by tests.
_PAIR_EXAMPLES = {
    "--option": "for example --option arch=armv7",
    "--recipe-set": "for example --recipe-set ptq.max_drop=0.005",
    "--ssh-option": "e.g. --ssh-option IdentityFile=~/.ssh/pi",
}


def parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    """Repeated `flag KEY=VALUE` values as a dict (a later KEY wins); EdgekitError on one without `=` or key."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgekitError(f"{flag} {pair!r} is not KEY=VALUE ({_PAIR_EXAMPLES[flag]}).")
        options[key] = value
    return options


# Where a bundle runs: validate and bench take the same four flags with the same defaults. Each command
# words its own help (the defaults it mentions differ), so these are factories rather than shared objects.

def device(help: str) -> Any:
    return typer.Option("local", "--device", help=help)


def device_python(help: str) -> Any:
    return typer.Option(None, "--device-python", help=help)


def device_dir(help: str) -> Any:
    return typer.Option(None, "--device-dir", help=help)


def ssh_option(help: str) -> Any:
    return typer.Option([], "--ssh-option", help=help)
