"""The task role's policy: one JSON source, rendered into the CloudFormation template.

``task-role-policy.json`` is the only copy written by hand. Its placeholders (``${ClusterName}``,
``${QueueArn}``, ``${Partition}``, ``${Region}``, ``${AccountId}``) are Terraform
``templatefile`` variables as they stand (the Terraform module reads the file directly); for
CloudFormation they become ``!Sub`` strings with the template's own names. ``python
deploy/iam/policy.py`` rewrites the block between the markers in the template; a test fails when
the template is stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "task-role-policy.json"
TEMPLATE = HERE.parent / "cloudformation" / "scaler.yaml"
BEGIN = "# BEGIN policy: generated from deploy/iam/task-role-policy.json"
END = "# END policy"
CFN_NAMES = {
    "Partition": "AWS::Partition",
    "Region": "AWS::Region",
    "AccountId": "AWS::AccountId",
    "QueueArn": "Queue.Arn",
    "ClusterName": "ClusterName",
}
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SOURCE.read_text())
    return document


def _scalar(value: str) -> str:
    if not _PLACEHOLDER.search(value):
        return json.dumps(value)
    cfn = _PLACEHOLDER.sub(lambda m: "${" + CFN_NAMES[m.group(1)] + "}", value)
    return "!Sub " + json.dumps(cfn)


def _yaml(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list):
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
    """The policy document as template lines, at ``indent`` spaces."""
    return "\n".join(_yaml(load(), indent)) + "\n"


def render(template: str) -> str:
    """``template`` with its generated policy block brought up to date."""
    start = template.index(BEGIN)
    line_start = template.rindex("\n", 0, start) + 1
    indent = start - line_start
    body_start = template.index("\n", start) + 1
    end = template.index(END, body_start)
    end_line = template.rindex("\n", 0, end) + 1
    return template[:body_start] + block(indent) + template[end_line:]


def main() -> int:
    text = TEMPLATE.read_text()
    new = render(text)
    TEMPLATE.write_text(new)
    print("CloudFormation policy block", "updated" if new != text else "already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
