"""Logs: one JSON object per line with context fields; text for humans."""

from __future__ import annotations

import io
import json
import logging

from scaler import logs
from scaler.settings import LogFormat


def test_json_lines_carry_context() -> None:
    stream = io.StringIO()
    logs.configure("INFO", LogFormat.JSON, stream)
    logging.getLogger("scaler.test").info(
        "drained", extra={"event_id": "e-1", "instance_id": "i-1"}
    )
    record = json.loads(stream.getvalue())
    assert record["message"] == "drained"
    assert record["level"] == "INFO"
    assert record["event_id"] == "e-1" and record["instance_id"] == "i-1"
    assert record["time"].endswith("+00:00")


def test_text_format_appends_context() -> None:
    stream = io.StringIO()
    logs.configure("INFO", LogFormat.TEXT, stream)
    logging.getLogger("scaler.test").warning("slow", extra={"instance_id": "i-9"})
    assert stream.getvalue().rstrip().endswith("scaler.test: slow instance_id=i-9")
