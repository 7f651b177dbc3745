"""The task role's policy: one JSON source, rendered into the CloudFormation template.

``task-role-policy.json`` is the only copy written by hand. Its placeholders (``${ClusterName}``,
``${QueueArn}``, ``${DeadLetterQueueArn}``, ``${Partition}``, ``${Region}``, ``${AccountId}``)
are Terraform ``templatefile`` variables as they stand (the Terraform module reads the file
directly); for CloudFormation they become ``!Sub`` strings with the template's own names. ``python
deploy/iam/policy.py`` rewrites the block between the markers in the template; a test fails when
the template is stale.

One placeholder stands for a list: a statement whose whole ``Resource`` is
``${InstanceRoleArns}`` (the roles the container instances' instance profiles hold, which
launches may pass to EC2) takes the list given, and is left out when the list is empty, since a
statement must name a resource. In CloudFormation such a statement is a policy of its own in the
role's ``Policies``, under ``!If`` on a condition of the template's (a second generated block:
an ``!If`` inside the statement list would keep checkov from reading the main policy);
Terraform replaces the marker after ``templatefile`` (``deploy/terraform/iam.tf``);
:func:`resolve` does it in Python, for the tests.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "task-role-policy.json"
TEMPLATE = HERE.parent / "cloudformation" / "scaler.yaml"
BEGIN = "# BEGIN policy: generated from deploy/iam/task-role-policy.json"
END = "# END policy"
CONDITIONAL_BEGIN = "# BEGIN conditional policies: generated from deploy/iam/task-role-policy.json"
CONDITIONAL_END = "# END conditional policies"
CFN_NAMES = {
    "Partition": "AWS::Partition",
    "Region": "AWS::Region",
    "AccountId": "AWS::AccountId",
    "QueueArn": "Queue.Arn",
    "DeadLetterQueueArn": "DeadLetterQueue.Arn",
    "ClusterName": "ClusterName",
}
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
# list placeholder -> (the template's CommaDelimitedList parameter, its "not empty" condition,
# the name of the conditional policy its statements make)
CFN_LISTS = {
    "${InstanceRoleArns}": ("InstanceRoleArns", "HasInstanceRoleArns", "scaler-instance-roles")
}


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SOURCE.read_text())
    return document


def _scalar(value: str) -> str:
    if not _PLACEHOLDER.search(value):
        return json.dumps(value)
    cfn = _PLACEHOLDER.sub(lambda m: "${" + CFN_NAMES[m.group(1)] + "}", value)
    return "!Sub " + json.dumps(cfn)


def resolve(values: dict[str, str], lists: dict[str, list[str]]) -> dict[str, Any]:
    """The policy with its placeholders given: ``values`` for the strings, ``lists`` (by
    placeholder name) for the list placeholders, whose statements go when their list is empty."""
    statements = []
    for statement in load()["Statement"]:
        listed = _PLACEHOLDER.fullmatch(str(statement["Resource"]))
        if listed and listed.group(1) in lists:
            if lists[listed.group(1)]:
                statements.append({**statement, "Resource": lists[listed.group(1)]})
            continue
        text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], json.dumps(statement))
        statements.append(json.loads(text))
    return {**load(), "Statement": statements}


def _on_list(statement: dict[str, Any]) -> str | None:
    resource = statement["Resource"]
    return resource if isinstance(resource, str) and resource in CFN_LISTS else None


def _conditional(placeholder: str, indent: int) -> list[str]:
    """The statements on ``placeholder`` as a policy of the role's, ``!If`` its list has items."""
    parameter, condition, name = CFN_LISTS[placeholder]
    statements = [
        {**s, "Resource": {"Ref": parameter}}
        for s in load()["Statement"]
        if _on_list(s) == placeholder
    ]
    if not statements:
        return []
    document = {"Version": load()["Version"], "Statement": statements}
    policy = _yaml([{"PolicyName": name, "PolicyDocument": document}], indent + 2)
    pad = " " * indent
    return [
        f"{pad}- !If",
        f"{pad}  - {json.dumps(condition)}",
        *policy,
        f'{pad}  - !Ref "AWS::NoValue"',
    ]


def _yaml(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict) and set(item) == {"Ref"}:
                lines.append(f"{pad}{json.dumps(key)}: !Ref {json.dumps(item['Ref'])}")
            elif isinstance(item, dict | list):
                lines += [f"{pad}{json.dumps(key)}:", *_yaml(item, indent + 2)]
            else:
                lines.append(f"{pad}{json.dumps(key)}: {_scalar(item)}")
        return lines
    lines = []
    for item in value:
        if isinstance(item, dict):
            inner = _yaml(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def block(indent: int) -> str:
    """The policy document as template lines, at ``indent`` spaces: every statement but those
    on a list placeholder."""
    document = load()
    document["Statement"] = [s for s in document["Statement"] if _on_list(s) is None]
    return "\n".join(_yaml(document, indent)) + "\n"


def conditional_block(indent: int) -> str:
    """The role's conditional policies (items of its ``Policies``), at ``indent`` spaces."""
    return "".join(line + "\n" for p in CFN_LISTS for line in _conditional(p, indent))


def _replace(template: str, begin: str, end_marker: str, lines: Callable[[int], str]) -> str:
    start = template.index(begin)
    line_start = template.rindex("\n", 0, start) + 1
    indent = start - line_start
    body_start = template.index("\n", start) + 1
    end = template.index(end_marker, body_start)
    end_line = template.rindex("\n", 0, end) + 1
    return template[:body_start] + lines(indent) + template[end_line:]


def render(template: str) -> str:
    """``template`` with its generated policy blocks brought up to date."""
    template = _replace(template, BEGIN, END, block)
    return _replace(template, CONDITIONAL_BEGIN, CONDITIONAL_END, conditional_block)


def main() -> int:
    text = TEMPLATE.read_text()
    new = render(text)
    TEMPLATE.write_text(new)
    print("CloudFormation policy block", "updated" if new != text else "already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
