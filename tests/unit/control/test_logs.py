"""JSON-lines logs: field selection and pipe-atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

from pointsman.control.logs import PIPE_BUF, JsonLog, _chunks


def test_access_fields_keep_only_the_named_keys_in_order(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = JsonLog(str(path), buffered=True, fields=["status", "client"])
    log.write({"client": "1.2.3.4:5", "status": 200, "bytes": 10})
    log.close()
    assert path.read_text() == '{"status":200,"client":"1.2.3.4:5"}\n'


def test_writes_never_split_a_line_and_stay_under_pipe_buf() -> None:
    lines = [json.dumps({"n": i, "pad": "x" * 90}).encode() + b"\n" for i in range(200)]
    chunks = _chunks(lines)
    assert b"".join(chunks) == b"".join(lines)
    assert all(len(chunk) <= PIPE_BUF and chunk.endswith(b"\n") for chunk in chunks)
    huge = [b"y" * (PIPE_BUF * 2) + b"\n"]
    assert _chunks(huge) == huge
