"""records.jsonl: one JSON line per finished cell, appended the moment it finishes.

Only the appending process writes, one `write` of a whole line each, flushed to disk, so a killed matrix
leaves at most a torn last line, which the next run drops. A resumed run skips every cell whose current key
has an `ok` or `skipped` record (so a changed input re-runs its cells); `failed` cells run again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Iterable

RECORDS = "records.jsonl"
DONE = ("ok", "skipped")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RecordLog:
    def __init__(self, out: Path):
        self.path = out / RECORDS
        self.dropped_torn_line = False

    def read(self) -> list[dict[str, Any]]:
        """Every complete record, in the order written; a torn last line (a killed write) is cut off."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as stream:  # cut the torn line so the next append starts clean
                stream.truncate(end)
            self.dropped_torn_line = True
        records = []
        for line in data[:end].splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line damaged by hand: that cell simply runs again
        return records

    def latest(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The last record of each cell key (of `keys` only, when given)."""
        wanted = set(keys) if keys is not None else None
        found: dict[str, dict[str, Any]] = {}
        for record in self.read():
            if wanted is None or record.get("key") in wanted:
                found[record["key"]] = record
        return found

    def done(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.latest(keys).items() if r.get("status") in DONE}

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
