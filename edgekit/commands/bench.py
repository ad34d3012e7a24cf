"""CLI: edgekit bench (being written; registers nothing yet)."""


def register(app) -> None:
    return None
