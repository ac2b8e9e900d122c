"""Read W&B's offline run files back, so tests can check what a sweep logged.

wandb 0.31 has no public reader for ``run-<id>.wandb`` (a LevelDB-style log of protobuf
``Record``s), so this one parses it. It is test code: the product only writes these files.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The record log, as written by wandb-core 0.31 and checked against real files:
#   file header: b":W&B" + magic 0xBEE1 (2 bytes, little-endian) + version 0 (1 byte);
#   then LevelDB-style blocks of 32 KiB, counted from the start of the file (the header is
#   part of block 0); each chunk: CRC32 (4 bytes LE), length (2 bytes LE), type (1 byte:
#   FULL=1, FIRST=2, MIDDLE=3, LAST=4), data. The CRC is zlib.crc32 over the type byte then
#   the data (not LevelDB's masked CRC32C). A block with < 7 bytes left is zero-padded.
#   Each reassembled record is a serialized wandb.proto.wandb_internal_pb2.Record.
_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_RUN_DIR = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-(.+)$")


def _iter_records(data: bytes) -> Iterator[bytes]:
    """Yield record payloads; stop quietly at a torn tail (a run still writing, or killed)."""
    if data[: len(_HEADER)] != _HEADER:
        raise ValueError(f"not a W&B run log (header {data[:7]!r}, expected {_HEADER!r})")
    pos, parts = len(_HEADER), []
    while pos < len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:
            pos += left  # block trailer padding
            continue
        if pos + _CHUNK_HEADER > len(data):
            return
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return  # torn or corrupt tail: everything before it is good
        pos += _CHUNK_HEADER + length
        if kind == _FULL:
            parts = []
            yield chunk
        elif kind == _FIRST:
            parts = [chunk]
        elif kind == _MIDDLE:
            parts.append(chunk)
        elif kind == _LAST:
            parts.append(chunk)
            yield b"".join(parts)
            parts = []


def _decode(value_json: str) -> Any:
    # wandb writes NaN/Infinity as bare tokens, which json.loads accepts.
    try:
        return json.loads(value_json)
    except ValueError:
        return value_json


def _item_path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _history_value(item: Any) -> Any:
    if item.value_json:
        return _decode(item.value_json)
    # Typed fields (a oneof "value") that newer writers may use instead of value_json.
    which = item.WhichOneof("value")
    if which is None or which == "none":
        return None
    if which == "json":
        return _decode(item.json)
    return getattr(item, which)


def _set_nested(target: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value


def _del_nested(target: dict, path: list[str]) -> None:
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _sort_key(path: Path) -> tuple:
    """Chronological order of run logs: dir timestamp, then wandb's "-N" collision suffix."""
    match = _RUN_DIR.match(path.parent.name)
    stamp, suffix = "", 0
    if match:
        stamp = match.group(1)
        run_id = path.stem.removeprefix("run-")
        tail = match.group(2)
        if tail != run_id and tail.startswith(run_id + "-") and tail[len(run_id) + 1 :].isdigit():
            suffix = int(tail[len(run_id) + 1 :])
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = math.inf
    return (stamp, suffix, mtime, str(path))


def find_runs(root: Path) -> list[Path]:
    """All ``.wandb`` run logs under ``root``, oldest first (``latest-run`` links skipped).

    Example:
        >>> find_runs(Path("/nonexistent"))
        []
    """
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix == ".wandb" else []
    found = []
    for path in root.rglob("*.wandb"):
        # wandb's "latest-run" symlink points at a dir we also find by its real name.
        dirs = path.relative_to(root).parents
        if any((root / d).is_symlink() for d in dirs if d != Path(".")):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found, key=_sort_key)


def _read_one(path: Path) -> dict[str, Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {
        "path": str(path),
        "run_id": None,
        "project": None,
        "entity": None,
        "group": None,
        "job_type": None,
        "name": None,
        "tags": [],
        "config": {},
        "history": [],
        "summary": {},
        "metrics": {},
        "files": [],
        "exit_code": None,
        "complete": False,
    }
    config: dict[str, Any] = out["config"]
    summary: dict[str, Any] = out["summary"]

    def apply_config(record: Any) -> None:
        for item in record.update:
            path_ = _item_path(item)
            # Config keys are ours, already dotted; nested_key would only come from wandb.
            config[".".join(path_)] = _decode(item.value_json)
        for item in record.remove:
            config.pop(".".join(_item_path(item)), None)

    for payload in _iter_records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(
                run_id=run.run_id or out["run_id"],
                project=run.project or out["project"],
                entity=run.entity or out["entity"],
                group=run.run_group or out["group"],
                job_type=run.job_type or out["job_type"],
                name=run.display_name or out["name"],
                tags=list(run.tags) or out["tags"],
            )
            apply_config(run.config)
        elif kind == "config":
            apply_config(record.config)
        elif kind == "history":
            # Flat "a.b" keys for nested values, as the W&B public API's history() shows them.
            row = {".".join(_item_path(i)): _history_value(i) for i in record.history.item}
            if "_step" not in row and record.history.HasField("step"):
                row["_step"] = record.history.step.num
            out["history"].append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set_nested(summary, _item_path(item), _decode(item.value_json))
            for item in record.summary.remove:
                _del_nested(summary, _item_path(item))
        elif kind == "metric":
            metric = record.metric
            name = metric.name or metric.glob_name
            aggs = [f.name for f, v in metric.summary.ListFields() if v]
            out["metrics"][name] = {"step_metric": metric.step_metric or None, "summary": aggs}
        elif kind == "files":
            out["files"].extend(f.path for f in record.files.files)
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
            out["complete"] = True

    config.pop("_wandb", None)  # wandb's own bookkeeping, not the experiment
    for key in ("_wandb", "_runtime", "_timestamp", "_step"):
        summary.pop(key, None)
    return out


def read_run(
    run_dir_or_file: Path, *, run_id: str | None = None, merge: bool = False
) -> dict[str, Any]:
    """Read an offline run log back: config, history, summary and run fields.

    ``run_dir_or_file`` is a ``.wandb`` file, a run's own directory, or any directory above
    (e.g. a trial's run_dir). When it holds several logs (an offline resume writes a new
    ``offline-run-*`` directory each time), the newest one with ``run_id`` (if given) is read;
    ``merge=True`` instead merges all of them oldest first, a later segment's row replacing
    an earlier one at the same ``_step`` and later config/summary values winning.

    Returns ``{"run_id", "project", "entity", "group", "job_type", "name", "tags", "config"
    (flat keys, without wandb's ``_wandb``), "history" (rows with ``_step``, in file order),
    "summary" (nested like the W&B API, without ``_wandb``/``_runtime``/``_timestamp``/
    ``_step``), "metrics" (define_metric settings), "files" (paths saved with the run,
    e.g. media/table/*.json), "exit_code", "complete" (an exit record was written),
    "path"}`` (``"paths"`` too when merged). JSON values are decoded.

    Example:
        >>> info = read_run(Path("runs/x/trial_0"))  # doctest: +SKIP
        >>> info["summary"]["gap"], [row["_step"] for row in info["history"]]  # doctest: +SKIP
        (0.3, [0, 1, 2])
    """
    logs = find_runs(Path(run_dir_or_file))
    if run_id is not None:
        logs = [p for p in logs if p.name == f"run-{run_id}.wandb"]
    if not logs:
        which = f" for run id {run_id!r}" if run_id else ""
        raise FileNotFoundError(f"no .wandb run log{which} under {run_dir_or_file}")
    if not merge or len(logs) == 1:
        return _read_one(logs[-1])

    parts = [_read_one(p) for p in logs]
    merged = dict(parts[-1])
    rows: dict[Any, dict] = {}
    unstepped: list[dict] = []
    for part in parts:
        for row in part["history"]:
            if "_step" in row:
                rows[row["_step"]] = row
            else:
                unstepped.append(row)
    merged["history"] = [rows[s] for s in sorted(rows)] + unstepped
    merged["config"] = {k: v for part in parts for k, v in part["config"].items()}
    merged["summary"] = {k: v for part in parts for k, v in part["summary"].items()}
    merged["files"] = sorted({f for part in parts for f in part["files"]})
    merged["paths"] = [part["path"] for part in parts]
    return merged




def written(root: Path, logs: int = 1, timeout: float = 60) -> list[Path]:
    """The run logs under ``root`` once ``logs`` of them exist and each has its exit record.

    ``run.finish()`` returns before wandb-core has written everything to an offline log (seen
    with wandb 0.31 on a loaded machine: the file still empty), so a test waits for that.
    """
    from tests.cli import wait_for

    def complete() -> list[Path] | None:
        found = find_runs(root)
        whole = len(found) >= logs and all(_read_one(path)["complete"] for path in found)
        return found if whole else None

    return wait_for(complete, f"{logs} complete W&B run log(s) under {root}", timeout=timeout)
