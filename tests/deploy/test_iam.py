"""The task role allows exactly the AWS operations `scaler run` calls, scoped to the cluster.

The operations are read from the code itself: every module `scaler run` imports (starting at
``scaler.loop``) is parsed, and each call on an AWS client (a receiver named after the service:
``aws.ecs``, ``self._sqs``, ``ecs``...) or ``get_paginator("...")`` is an operation of that
service's botocore model. A receiver that is not a client but calls a method named like an AWS
operation (the ECS model's ``stop_task``) must be listed in ``NOT_CLIENTS``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("sqs", "ecs", "ec2", "autoscaling", "cloudwatch", "dynamodb")
NOT_CLIENTS = frozenset({"model", "self.cluster", "cluster", "sim"})  # the ECS model
PURE = ("scaler/ecs/", "scaler/plan/", "scaler/sim/")  # no I/O (tests/unit/test_layering.py)
# IAM authorizes some operations under another action's name
IAM_ACTION = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}
# permissions an operation needs besides its own
IMPLIED = {
    "iam:PassRole": "ecs:RunTask passes the restarted task's own roles to ECS; ec2:CreateFleet "
    "the template's instance profile to EC2",
    "ec2:RunInstances": "ec2:CreateFleet launches through RunInstances",
}
# statements that name no cluster: what a launch uses besides its template (which is scoped)
UNSCOPED = {"LaunchTemplatePoolsUseNetworkImagesAndVolumes"}
READ_PREFIXES = ("Describe", "List", "Get")


def policy_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_policy", ROOT / "deploy/iam/policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_modules(root: str = "scaler.loop") -> list[Path]:
    """The source files of every scaler module ``root`` imports, directly or not."""
    seen: dict[str, Path] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        base = ROOT / Path(*name.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if name in seen or not path.exists():
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scaler"):
                assert node.module is not None
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("scaler")]
    return sorted(p for p in seen.values() if not str(p.relative_to(ROOT)).startswith(PURE))


def _operations() -> dict[str, dict[str, str]]:
    session = botocore.session.get_session()
    return {
        svc: {xform_name(op): op for op in session.get_service_model(svc).operation_names}
        for svc in SERVICES
    }


def _service_of(receiver: str) -> str | None:
    last = receiver.split(".")[-1].lstrip("_").lower()
    return last if last in SERVICES else None


def calls(paths: list[Path]) -> Iterator[tuple[str, str, str]]:
    """(IAM action, file, receiver) for every AWS call in ``paths``."""
    ops = _operations()
    every = {name for names in ops.values() for name in names}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, ast.unparse(node.func.value)
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = str(node.args[0].value)
            elif method not in every:
                continue
            service = _service_of(receiver)
            where = str(path.relative_to(ROOT))
            if service is None:
                assert receiver in NOT_CLIENTS, f"{where}: which AWS service is {receiver!r}?"
                continue
            assert method in ops[service], f"{where}: {service} has no operation {method}"
            action = f"{service}:{ops[service][method]}"
            yield IAM_ACTION.get(action, action), where, receiver


def called() -> set[str]:
    return {action for action, _, _ in calls(run_modules())}


def granted(document: dict[str, object]) -> set[str]:
    statements = document["Statement"]
    assert isinstance(statements, list)
    return {a for s in statements for a in s["Action"]}


def differences(allowed: set[str], needed: set[str]) -> tuple[set[str], set[str]]:
    """(missing from the policy, granted but never called)."""
    return needed - allowed, allowed - needed - set(IMPLIED)


def test_the_policy_grants_exactly_what_the_code_calls() -> None:
    needed = called()
    assert len(needed) >= 20, needed  # the parser finds the calls it should
    assert {"ecs:UpdateContainerInstancesState", "sqs:ReceiveMessage"} <= needed
    missing, unused = differences(granted(policy_module().load()), needed)
    assert not missing, f"the task role lacks {sorted(missing)}"
    assert not unused, f"the task role grants {sorted(unused)}, which the code never calls"


@pytest.mark.parametrize(
    "action", ["ecs:StopTask", "sqs:DeleteMessage", "cloudwatch:GetMetricData"]
)
def test_removing_one_permission_is_caught(action: str) -> None:
    document = policy_module().load()
    for statement in document["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != action]
    missing, _ = differences(granted(document), called())
    assert missing == {action}


def test_an_extra_permission_is_caught() -> None:
    document = policy_module().load()
    document["Statement"][0]["Action"].append("sqs:PurgeQueue")
    _, unused = differences(granted(document), called())
    assert unused == {"sqs:PurgeQueue"}


def test_only_snapshot_and_plan_read_more_than_run() -> None:
    # `scaler snapshot` reads EC2 instances and spot prices; `scaler run` never does
    assert "ec2:DescribeSpotPriceHistory" not in called()
    snapshot = {a for a, _, _ in calls([ROOT / "scaler/snapshot.py"])}
    assert "ec2:DescribeSpotPriceHistory" in snapshot


def test_no_wildcard_actions_and_writes_are_scoped() -> None:
    for statement in policy_module().load()["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action, action
            name = action.split(":")[1]
            if statement["Resource"] == "*" and "Condition" not in statement:
                assert name.startswith(READ_PREFIXES), f"{action} on any resource"
        if set(statement["Action"]) <= set(IMPLIED):
            assert "Condition" in statement, statement["Sid"]
        elif statement["Resource"] != "*" and statement["Sid"] not in UNSCOPED:
            assert "${ClusterName}" in json.dumps(statement) or "${QueueArn}" in json.dumps(
                statement
            ), statement["Sid"]


def test_the_cloudformation_template_carries_the_policy() -> None:
    module = policy_module()
    text = module.TEMPLATE.read_text()
    assert module.render(text) == text, "stale policy block: run python deploy/iam/policy.py"
    assert text.count(module.BEGIN) == 1


def test_the_terraform_module_reads_the_same_policy_file() -> None:
    text = "\n".join(p.read_text() for p in (ROOT / "deploy/terraform").glob("*.tf"))
    assert "iam/task-role-policy.json" in text
