"""Fuzzing scaler.events.parse_event with mutations of the example AWS payloads.

test_events.py already feeds arbitrary text, arbitrary JSON, envelope-shaped JSON and one-field
changes at the top level or in ``detail``. This file goes further with the example payloads in
``tests/fixtures/events`` (read relative to this file): several mutations at any depth
(delete, replace, change the type of, rename a key), truncation and byte damage of the JSON text,
other encodings, SNS / SQS / EventBridge-in-a-string wrappers (which the parser does not unwrap:
they must be malformed, not half-read), hostile unicode and huge strings and numbers. The parser
must return a Signal (or Ignored) or raise the documented MalformedEvent, never anything else.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from scaler.events import (
    MAX_BODY_BYTES,
    SIGNAL_KINDS,
    Ignored,
    MalformedEvent,
    Signal,
    parse_event,
)

EVENTS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "events"
REASONS = {"too_large", "not_json", "not_object", "invalid_envelope", "invalid_detail"}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every example payload is an event the scaler acts on: the kind it must parse to.
EXPECTED_KIND = {
    "ec2-spot-instance-interruption-warning.json": "spot_interruption",
    "ec2-instance-rebalance-recommendation.json": "rebalance_recommendation",
    "ec2-instance-state-change-notification.json": "instance_state_change",
    "autoscaling-ec2-instance-terminate-lifecycle-action.json": "lifecycle_terminate",
    "aws-health-ec2-scheduled-change.json": "scheduled_change",
    "ecs-container-instance-state-change.json": "container_instance_change",
    "ecs-task-state-change.json": "task_state_change",
    "ecs-service-action-task-placement-failure-ec2.json": "service_placement_failure",
    "aws-doc-variants/ec2-spot-instance-interruption-warning.awsdoc.json": "spot_interruption",
    "aws-doc-variants/ec2-instance-rebalance-recommendation.awsdoc.json": (
        "rebalance_recommendation"
    ),
    "aws-doc-variants/ec2-instance-state-change-notification.awsdoc.json": (
        "instance_state_change"
    ),
}
NAMES = sorted(EXPECTED_KIND)


@cache
def raw(name: str) -> str:
    return (EVENTS_DIR / name).read_text(encoding="utf-8")


def payload(name: str) -> Any:
    return json.loads(raw(name))


def label(outcome: str) -> None:
    """Count outcomes for ``--hypothesis-show-statistics`` (to see the fuzzer's reach)."""
    if currently_in_test_context():
        event(outcome)


def check(body: str | bytes) -> Signal | MalformedEvent:
    """Parse ``body``; only a Signal or a MalformedEvent is acceptable, each well formed."""
    try:
        signal = parse_event(body)
    except MalformedEvent as exc:
        assert exc.reason in REASONS, exc.reason
        assert len(str(exc)) <= 200
        label(f"malformed: {exc.reason}")
        return exc
    assert isinstance(signal, Signal)
    assert signal.KIND in SIGNAL_KINDS
    assert isinstance(signal.event_id, str)
    label(f"signal: {signal.KIND}")
    for stamp in (signal.time, getattr(signal, "start_time", None)):
        assert stamp is None or stamp.tzinfo is UTC
    return signal


# --- strategies ----------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e",  # right-to-left override
        "\ufeff",
        "\ud800",  # a lone surrogate (JSON allows the escape)
        "i-\udcff",
        "😀" * 50,
        "i-" + "\u0301" * 100,  # combining marks
        "NaN",
        "null",
        "yyyy-mm-ddThh:mm:ssZ",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "Fri, 31 Dec 9999 23:59:59 -2359",
        "Mon, 01 Jan 0001 00:00:00 +2359",
        "arn:aws:ec2:us-east-1:1:instance/",
        "arn:aws:ec2:us-east-1:1:instance/i-",
        "autoscaling:EC2_INSTANCE_TERMINATING",
        "SERVICE_TASK_PLACEMENT_FAILURE",
    ]
)
HUGE_TEXT = st.integers(1_000, 30_000).map(lambda n: "x" * n)
TEXT = st.text(max_size=40) | NASTY_TEXT | HUGE_TEXT
NUMBERS = (
    st.integers(-(2**70), 2**70)
    | st.sampled_from([2**63, -(2**63) - 1, 10**300, 0, -1])
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a value inside ``value`` (not the root itself)."""
    found: list[Path_] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def parent_of(root: Any, path: Path_) -> Any:
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


def changed_type(value: Any) -> Any:
    """The same information in another JSON type."""
    if isinstance(value, str):
        return [value] if len(value) % 2 else {"value": value}
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return dict(enumerate(value)) if value else ""
    if isinstance(value, dict):
        return list(value.values())
    return 0


@st.composite
def mutated(draw: st.DrawFn, name: str | None = None) -> Any:
    """A example payload with one to four mutations at random depths."""
    root = payload(name or draw(st.sampled_from(NAMES), label="file"))
    for _ in range(draw(st.integers(1, 4), label="mutations")):
        where = paths(root)
        inside = [p for p in where if len(p) > 1]  # below the envelope: most of the shape
        deep = draw(st.integers(0, 3), label="deep")
        if inside and deep:
            where = inside
        if not where:
            break
        path = draw(st.sampled_from(where), label="path")
        parent, key = parent_of(root, path), path[-1]
        action = draw(st.sampled_from(["drop", "replace", "retype", "rename", "null"]))
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(JSON, label="value")
        elif action == "retype":
            parent[key] = changed_type(parent[key])
        elif action == "null":
            parent[key] = None
        elif isinstance(parent, dict) and isinstance(key, str):  # rename
            new = draw(
                st.sampled_from([key.upper(), key.lower(), key + " ", key.replace("-", "_")])
            )
            parent[new] = parent.pop(key)
    return root


# --- the example payloads still parse -----------------------------------------------------------


def test_every_example_payload_is_covered() -> None:
    root = EVENTS_DIR
    assert {p.relative_to(root).as_posix() for p in root.rglob("*.json")} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_unmodified_example_payload_parses_to_its_kind(name: str) -> None:
    for body in (raw(name), raw(name).encode(), json.dumps(payload(name), ensure_ascii=False)):
        signal = parse_event(body)
        assert EXPECTED_KIND[name] == signal.KIND
        assert not isinstance(signal, Ignored)


# --- mutations ---------------------------------------------------------------------------------


@FUZZ
@given(mutated())
def test_mutations_at_any_depth(value: Any) -> None:
    check(json.dumps(value))
    check(json.dumps(value, ensure_ascii=False))


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.data())
def test_truncated_or_damaged_text(name: str, data: st.DataObject) -> None:
    text = raw(name)
    cut = data.draw(st.integers(0, len(text)), label="cut")
    check(text[:cut])
    check(text[cut:])
    body = text.encode()
    at = data.draw(st.integers(0, len(body) - 1), label="at")
    byte = data.draw(st.integers(0, 255), label="byte")
    check(body[:at] + bytes([byte]) + body[at + 1 :])
    junk = data.draw(st.binary(max_size=8) | st.sampled_from([b"\x00", b"\xef\xbb\xbf"]))
    check(body[:at] + junk + body[at:])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1"])
def test_other_encodings(name: str, encoding: str) -> None:
    result = check(raw(name).encode(encoding))
    if encoding in ("utf-8-sig", "utf-16", "utf-32"):  # JSON's own detection reads these
        assert isinstance(result, Signal) and EXPECTED_KIND[name] == result.KIND


def sns(body: str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:events",
        "Message": body,
        "Timestamp": "2020-01-01T00:00:00.000Z",
        "SignatureVersion": "1",
    }


WRAPPERS = {
    "sns": lambda body: json.dumps(sns(body)),
    "sqs_records": lambda body: json.dumps({"Records": [{"messageId": "1", "body": body}]}),
    "sqs_records_sns": lambda body: json.dumps({"Records": [{"Sns": sns(body)}]}),
    "json_string": lambda body: json.dumps(body),
    "list": lambda body: json.dumps([json.loads(body)]),
    "nested_detail": lambda body: json.dumps({"detail": json.loads(body)}),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_wrapped_payloads_are_malformed_not_half_read(name: str, wrapper: str) -> None:
    """The parser does not unwrap SNS or SQS envelopes (the queue gets EventBridge's JSON as
    it is); a wrapped event must go to the dead-letter queue, not be read as something else."""
    result = check(WRAPPERS[wrapper](raw(name)))
    assert isinstance(result, MalformedEvent)
    expected = "not_object" if wrapper in ("json_string", "list") else "invalid_envelope"
    assert result.reason == expected


@FUZZ
@given(name=st.sampled_from(NAMES), wrapper=st.sampled_from(sorted(WRAPPERS)), data=st.data())
def test_wrapped_mutations(name: str, wrapper: str, data: st.DataObject) -> None:
    value = data.draw(mutated(name))
    body = json.dumps(value)
    if not isinstance(value, dict) and wrapper in ("list", "nested_detail"):
        return
    check(WRAPPERS[wrapper](body))


@FUZZ
@given(
    name=st.sampled_from(NAMES),
    text=st.text(st.characters(codec="utf-8") | st.sampled_from("\ud800\udfff\x00"), max_size=64),
    data=st.data(),
)
def test_unicode_in_every_string(name: str, text: str, data: st.DataObject) -> None:
    value = payload(name)
    strings = [p for p in paths(value) if isinstance(parent_of(value, p)[p[-1]], str)]
    for path in data.draw(st.lists(st.sampled_from(strings), min_size=1, max_size=4)):
        parent = parent_of(value, path)
        parent[path[-1]] = data.draw(st.sampled_from([text, parent[path[-1]] + text, text * 50]))
    check(json.dumps(value))
    check(json.dumps(value, ensure_ascii=False))
    check(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@FUZZ
@given(name=st.sampled_from(NAMES), extra=st.integers(-64, 64))
def test_bodies_around_the_size_limit(name: str, extra: int) -> None:
    """Padding a example payload to the limit (whitespace or one huge ignored field)."""
    text = raw(name)
    size = MAX_BODY_BYTES + extra
    padded = text + " " * (size - len(text.encode()))
    result = check(padded)
    assert isinstance(result, MalformedEvent) == (size > MAX_BODY_BYTES)
    value = payload(name)
    value["padding"] = ""
    room = size - len(json.dumps(value).encode())
    value["padding"] = "é" * (room // 2)  # two bytes each in UTF-8
    body = json.dumps(value, ensure_ascii=False)
    result = check(body)
    if len(body.encode()) > MAX_BODY_BYTES:
        assert isinstance(result, MalformedEvent) and result.reason == "too_large"
    else:
        assert isinstance(result, Signal) and EXPECTED_KIND[name] == result.KIND


RFC1123 = st.builds(
    "{}, {} {} {} {}:{}:{} {}".format,
    st.sampled_from(["Mon", "Sun", "Xyz", ""]),
    st.integers(-1, 99) | st.text(max_size=3),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo", ""]),
    st.integers(-1, 99999) | st.text(max_size=5),
    st.integers(-1, 99),
    st.integers(-1, 99),
    st.integers(-1, 99) | st.text(max_size=4),
    st.sampled_from(["GMT", "UT", "+2359", "-2359", "+9999", "EST", "", "Z", "+00:00"]),
)


@FUZZ
@given(
    start=RFC1123 | st.text(max_size=40) | JSON,
    when=st.text(max_size=40) | JSON,
)
def test_health_and_envelope_timestamps(start: Any, when: Any) -> None:
    value = payload("aws-health-ec2-scheduled-change.json")
    value["detail"]["startTime"] = start
    value["time"] = when
    result = check(json.dumps(value))
    # a timestamp that cannot be read becomes None: never a reason to refuse the event
    if isinstance(result, MalformedEvent):
        assert result.reason == "too_large"  # the huge strings can exceed the size limit
    else:
        assert result.KIND == "scheduled_change"


@FUZZ
@given(copies=st.integers(1, 5), data=st.data())
def test_duplicate_keys_in_the_text(copies: int, data: st.DataObject) -> None:
    """JSON text may repeat a key (the last one wins in Python): still a Signal or malformed."""
    name = data.draw(st.sampled_from(NAMES))
    value = payload(name)
    key = data.draw(st.sampled_from(sorted(value)))
    text = raw(name).rstrip()
    assert text.endswith("}")
    extra = "".join(f", {json.dumps(key)}: {json.dumps(data.draw(JSON))}" for _ in range(copies))
    check(text[:-1] + extra + "}")


@FUZZ
@given(depth=st.integers(1, 5_000), name=st.sampled_from(NAMES))
def test_deep_nesting_inside_an_example_payload(depth: int, name: str) -> None:
    value = payload(name)
    deep = "[" * depth + "]" * depth
    text = json.dumps(value)
    body = text[:-1] + f', "deep": {deep}' + "}"
    result = check(body)
    if depth < 900:  # well inside the interpreter's recursion limit
        assert isinstance(result, Signal) and EXPECTED_KIND[name] == result.KIND


def test_mutation_helper_reaches_nested_fields() -> None:
    """The fuzzer's paths reach the deepest fields (e.g. a Health event's entities)."""
    found = paths(payload("aws-health-ec2-scheduled-change.json"))
    assert ("detail", "affectedEntities", 0, "entityValue") in found
    assert ("detail", "affectedEntities", 0, "tags", "stage") in found
    value = copy.deepcopy(payload("ecs-container-instance-state-change.json"))
    assert max(len(p) for p in paths(value)) >= 4
