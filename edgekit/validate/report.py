"""A validation as a record: what the report prints, the JSON it writes, what the manifest keeps.

Appending a record rewrites edgekit.json only; the manifest's own checksum is
not in its `files` table, so the bundle still verifies afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from edgekit.bundle import MANIFEST
from edgekit.errors import EdgekitError

# A manifest keeps this many failed images by name (the JSON report keeps them all).
MANIFEST_FAILURES = 100


@dataclass
class ValidationReport:
    record: dict[str, Any]  # JSON-ready; `failures` complete
    bundle: Path  # the bundle that was validated (and whose manifest holds the record)

    @property
    def complete(self) -> bool:
        return self.record["complete"]

    @property
    def passed(self) -> bool | None:
        """The --max-drop verdict: None when no threshold was given."""
        return self.record["passed"]

    @property
    def ok(self) -> bool:
        """Complete, and within --max-drop where one was given."""
        return self.complete and self.passed is not False

    def to_json(self) -> str:
        return json.dumps(self.record, indent=1, ensure_ascii=False)

    def manifest_record(self) -> dict[str, Any]:
        record = dict(self.record)
        failures = record["failures"]
        if len(failures) > MANIFEST_FAILURES:
            record["failures"] = failures[:MANIFEST_FAILURES]
            record["failures_truncated"] = f"first {MANIFEST_FAILURES} of {len(failures)}; --report FILE lists all"
        return record


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Locks the bundle directory itself: no lock file appears among the bundle's files.
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_validation(bundle: Path, record: dict[str, Any]) -> None:
    """Add `record` to the manifest's `validations` list, atomically."""
    path = bundle / MANIFEST
    try:
        with _locked(bundle):
            manifest = json.loads(path.read_text())
            manifest.setdefault("validations", []).append(record)
            fd, temp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=bundle)
            try:
                with os.fdopen(fd, "w") as stream:
                    stream.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
                os.chmod(temp, path.stat().st_mode & 0o777)
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
    except OSError as exc:
        raise EdgekitError(f"Could not append the validation to {path}: {exc}. The results were not recorded "
                           "in the bundle (pass --report FILE to keep them, or --no-record).") from None


def write_report(path: Path, report: ValidationReport) -> None:
    try:
        path.write_text(report.to_json() + "\n", encoding="utf-8")
    except OSError as exc:
        raise EdgekitError(f"--report {path} could not be written: {exc}.") from None
