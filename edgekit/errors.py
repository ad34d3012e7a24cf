"""One error type for everything a user can get wrong.

The CLI turns an EdgekitError into its message and exit code 2; the library
raises it before any work starts wherever input can be checked up front.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Bad input or a missing prerequisite, explained in one paragraph."""

    exit_code = 2


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """A ' Did you mean ...?' suffix for an unknown name, or ''."""
    import difflib

    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        close = [c for c in choices if name.lower() in c.lower()][:n]
    else:
        close = [lowered[c] for c in close]
    return f" Did you mean {', '.join(close)}?" if close else ""
