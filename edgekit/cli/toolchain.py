"""`edgekit doctor` (what is usable here), `edgekit toolchain install` (provision what is not), and the
ARM Lite runtimes the native runner links (`register-lite-runtime`, `build-lite-runtime`)."""

from __future__ import annotations


import typer
from rich.table import Table

from edgekit.cli.console import console, err_console, handle_errors, write_json

toolchain_app = typer.Typer(no_args_is_help=True, help="External toolchains edgekit provisions (Paddle Lite).")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
    app.add_typer(toolchain_app, name="toolchain")


@handle_errors
def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Which runtimes, converters and toolchains are usable here, with versions."""
    from edgekit import api

    checks = api.doctor()
    if as_json:
        write_json([c.to_dict() for c in checks])
    else:
        table = Table(title="edgekit doctor")
        for col in ("component", "role", "status", "version", "detail"):
            table.add_column(col)
        for c in checks:
            table.add_row(c.component, c.role, "[green]ok[/]" if c.ok else "[red]missing[/]", c.version, c.detail)
        console.print(table)
    # The Lite toolchain is optional until an arm-lite build needs it.
    if not all(c.ok for c in checks if not c.optional):
        raise typer.Exit(1)


@toolchain_app.command("install")
@handle_errors
def toolchain_install(name: str = typer.Argument(..., help="Toolchain name: paddle-lite."),
                      force: bool = typer.Option(False, help="Re-provision even if cached.")) -> None:
    """Download, verify and cache a toolchain (reusable offline afterwards)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit import api

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console) as bar:
        task = bar.add_task(f"installing {name}", total=None)

        def report(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total or None)

        info = api.install_toolchain(name, force=force, progress=report)
    console.print(f"{name} {info.lite_version} ready: {info.root or info.python} ({info.source})")


def _show_runtime(runtime) -> None:
    from edgekit.toolchains.lite_runtime import OPT_VERSION

    console.print(f"{runtime.arch} Lite runtime {runtime.version} registered: {runtime.root}")
    if not runtime.version_matches:
        err_console.print(f"[yellow]warning:[/] its version {runtime.version} differs from the optimizer's "
                          f"{OPT_VERSION}; 2.12 runtimes warn on 2.13-rc .nb files, 2.9/2.10 crash on them.")


@toolchain_app.command("register-lite-runtime")
@handle_errors
def register_lite_runtime(directory: str = typer.Argument(..., help="An inference_lite_lib.* folder (cxx/include, "
                                                                     "cxx/lib/libpaddle_light_api_shared.so).")) -> None:
    """Check and register a Paddle Lite runtime library (its arch is read from the .so)."""
    from edgekit.toolchains import lite_runtime

    _show_runtime(lite_runtime.register(directory))


@toolchain_app.command("build-lite-runtime")
@handle_errors
def build_lite_runtime(source: str = typer.Argument(..., help="A Paddle-Lite source checkout (tag v2.13-rc)."),
                       arch: str = typer.Option("armv8", help="armv8 or armv7 (hard float)."),
                       jobs: int = typer.Option(None, help="Parallel compile jobs (default: all CPUs)."),
                       log: str = typer.Option("lite-runtime-build.log", help="Where the build output goes.")) -> None:
    """Build a light-API Lite runtime from source, then register it (no downloads; ~30 min on 2 cores)."""
    from edgekit.toolchains import lite_runtime

    with err_console.status(f"building the {arch} Lite runtime in {source} (log: {log})"):
        runtime = lite_runtime.build_from_source(source, arch, jobs=jobs, log=log)
    _show_runtime(runtime)
