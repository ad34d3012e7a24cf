"""CLI command groups, one module each, registered onto the main Typer app by edgekit.cli."""
