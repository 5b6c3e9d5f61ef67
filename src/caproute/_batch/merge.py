"""A job's results on disk: each batch's downloaded results indexed, then everything
merged into one output line per input ``custom_id``.

Blocking local work (SQLite and files); the job's flows run it as `Local` actions, so
an async job runs it in a worker thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from .reports import BatchResults
from .store import ChunkRecord

__all__ = ["check_output", "chunk_holds", "index_results", "write_results"]


def chunk_holds(conn: sqlite3.Connection, record: ChunkRecord, custom_id: str) -> bool:
    """Whether `record`'s chunk holds the request `custom_id`."""
    row = conn.execute(
        "SELECT 1 FROM routes WHERE custom_id = ? AND round = ? AND chunk = ?",
        (custom_id, record.round, record.chunk),
    ).fetchone()
    return row is not None


def index_results(conn: sqlite3.Connection, record: ChunkRecord, path: Path) -> int:
    """Store one batch's results (one transaction, so a crash leaves nothing half-done),
    then delete the downloaded file; returns how many lines were not of this chunk."""
    unknown = 0
    conn.execute("BEGIN")
    try:
        with path.open("rb") as stream:
            for raw in stream:
                if not raw.strip():
                    continue
                line = json.loads(raw)
                custom_id = line.get("custom_id") if isinstance(line, dict) else None
                result = line.get("result") if isinstance(line, dict) else None
                if not isinstance(custom_id, str) or not isinstance(result, dict):
                    unknown += 1
                    continue
                if not chunk_holds(conn, record, custom_id):
                    unknown += 1
                    continue
                kind = result.get("type")
                conn.execute(
                    "INSERT OR REPLACE INTO results(custom_id, round, type, body) "
                    "VALUES (?, ?, ?, ?)",
                    (custom_id, record.round, str(kind), _dumps(result)),
                )
        conn.execute(
            "INSERT OR REPLACE INTO downloads(round, chunk, batch_id) VALUES (?, ?, ?)",
            (record.round, record.chunk, record.batch_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    path.unlink(missing_ok=True)
    return unknown


def check_output(out: Path, *, input_path: Path, state_dir: Path) -> None:
    """Refuse a results path that would overwrite the job's own files.

    Raises:
        ConfigError: `out` is the job's input file or inside its state directory.
    """
    target = out.resolve()
    if target == input_path.resolve() or (
        target.exists() and input_path.exists() and os.path.samefile(target, input_path)
    ):
        raise ConfigError(
            f"{out}: that is the job's input file, which retries read their requests "
            "from; write the results to another file"
        )
    if target.is_relative_to(state_dir.resolve()):
        raise ConfigError(
            f"{out}: that is inside the job's state directory {state_dir}; "
            "write the results to a file outside it"
        )


def write_results(
    conn: sqlite3.Connection, records: Iterable[ChunkRecord], out: Path
) -> BatchResults:
    """Merge everything into `out` (written beside it, then renamed into place)."""
    batch_ids: Mapping[tuple[int, int], str | None] = {
        (r.round, r.chunk): r.batch_id for r in records
    }
    counts: dict[str, int] = {}
    lines = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    rows = conn.execute(
        "SELECT i.custom_id, i.line, r.round, r.chunk, r.decision, res.type, res.body "
        "FROM items i "
        "JOIN routes r ON r.custom_id = i.custom_id AND r.round = i.latest_round "
        "LEFT JOIN results res ON res.custom_id = i.custom_id AND res.round = i.latest_round "
        "ORDER BY i.line"
    )
    try:
        with tmp.open("w", encoding="utf-8") as stream:
            for custom_id, line, round_no, chunk, decision, kind, body in rows:
                batch_id = batch_ids.get((round_no, chunk)) if chunk is not None else None
                kind, body = _result_of(chunk, batch_id, decision, kind, body)
                counts[kind] = counts.get(kind, 0) + 1
                lines += 1
                stream.write(
                    f'{{"custom_id":{_dumps(custom_id)},"result":{body},'
                    f'"caproute":{{"line":{line},"round":{round_no},'
                    f'"batch_id":{_dumps(batch_id)},"decision":{decision}}}}}\n'
                )
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BatchResults(out, lines, counts)


def _result_of(
    chunk: int | None, batch_id: str | None, decision: str, kind: str | None, body: str | None
) -> tuple[str, str]:
    """The ``result`` of one output line: the API's, or caproute's own."""
    if chunk is None:
        reason = json.loads(decision).get("reason") or "refused by caproute"
        return "refused", _dumps({"type": "refused", "reason": reason})
    if body is not None and kind is not None:
        return kind, body
    if batch_id is None:  # the job was canceled before this chunk was sent
        return "canceled", '{"type":"canceled"}'
    reason = f"the results of {batch_id} have no line for this custom_id"
    return "missing", _dumps({"type": "missing", "reason": reason})


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
