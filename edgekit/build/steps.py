"""The steps of a build: each timed, its output checked, and recorded for the manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgekit.errors import EdgekitError

Progress = Callable[[str], None]


@dataclass
class StepRecord:
    name: str
    seconds: float
    output: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "output": self.output, "size": self.size}


class Steps:
    """The build's step log; `run` is what converters are handed (targets.base.Conversion.step)."""

    def __init__(self, progress: Progress | None = None):
        self.progress = progress
        self.records: list[StepRecord] = []

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)

    def run(self, name: str, fn, *args, **kwargs) -> Path:
        """Run one conversion step: time it, check it produced a non-empty output, record it."""
        self.say(name)
        start = time.perf_counter()
        output = Path(fn(*args, **kwargs))
        seconds = time.perf_counter() - start
        if not output.is_file() or output.stat().st_size == 0:
            raise EdgekitError(f"Build step {name} produced no output at {output}.")
        self.add(name, seconds, output)
        return output

    def add(self, name: str, seconds: float, output: Path) -> None:
        """Record a step that ran elsewhere (training passes, INT8, parity) and wrote `output`."""
        self.records.append(StepRecord(name, seconds, output.name, output.stat().st_size))
