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
from typing import Any, cast

import botocore.session
import pytest
import yaml  # type: ignore[import-untyped]
from botocore import xform_name

from scaler.aws import surges
from scaler.aws.clients import AwsClients
from scaler.aws.templates import TemplatePools
from scaler.settings import load_settings
from tests.deploy.iam_eval import Request, Value, allowed, arn_like, decide

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
            text = json.dumps(statement)
            scoped = ("${ClusterName}", "${QueueArn}", "${DeadLetterQueueArn}")
            assert any(s in text for s in scoped), statement["Sid"]


def test_the_cloudformation_template_carries_the_policy() -> None:
    module = policy_module()
    text = module.TEMPLATE.read_text()
    assert module.render(text) == text, "stale policy block: run python deploy/iam/policy.py"
    assert text.count(module.BEGIN) == 1


def test_the_terraform_module_reads_the_same_policy_file() -> None:
    text = "\n".join(p.read_text() for p in (ROOT / "deploy/terraform").glob("*.tf"))
    assert "iam/task-role-policy.json" in text


# ---- the policy evaluated: what a launch may and may not do --------------------------------

ACCOUNT, REGION, CLUSTER = "123456789012", "eu-west-1", "prod"
EC2 = f"arn:aws:ec2:{REGION}:{ACCOUNT}:"
TEMPLATE = f"{EC2}launch-template/lt-0abc"
INSTANCE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/prod-ecs-instance"
VALUES = {
    "Partition": "aws",
    "Region": REGION,
    "AccountId": ACCOUNT,
    "ClusterName": CLUSTER,
    "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:scaler-prod-events",
    "DeadLetterQueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:scaler-prod-dlq",
}


def policy(instance_roles: tuple[str, ...] = (INSTANCE_ROLE,)) -> dict[str, Any]:
    document: dict[str, Any] = policy_module().resolve(
        VALUES, {"InstanceRoleArns": list(instance_roles)}
    )
    return document


def fleet_request(subnets: str = "subnet-a,subnet-b") -> dict[str, Any]:
    """The CreateFleet request the scaler sends for a spot template pool."""
    settings = load_settings(
        cluster=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
        queue_url="http://q",
        spot_templates="spot=lt-0abc",
        fleet_subnets=subnets,
    )
    pools = TemplatePools(cast(AwsClients, None), settings)
    return pools._request("spot", 2, "token", ("lt-0abc", "3"))


def _request_tags(request: dict[str, Any], kind: str) -> dict[str, Value]:
    tags = {
        t["Key"]: t["Value"]
        for spec in request["TagSpecifications"]
        if spec["ResourceType"] == kind
        for t in spec["Tags"]
    }
    return {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": list(tags)}


def launch(
    request: dict[str, Any],
    *,
    template: str | None = TEMPLATE,
    template_tags: dict[str, str] | None = None,
    from_template: bool = True,
) -> list[Request]:
    """The RunInstances authorizations of one instance the fleet ``request`` launches: one per
    resource it touches, with the condition keys EC2 gives each (``template`` None: a launch
    that names no launch template, so EC2 gives no template keys at all)."""
    on_template = (
        {"ec2:LaunchTemplate": template, "ec2:IsLaunchTemplateResource": str(from_template)}
        if template
        else {}
    )
    overrides = request["LaunchTemplateConfigs"][0].get("Overrides", [])
    subnet_from_template = template is not None and not any("SubnetId" in o for o in overrides)
    subnet_keys = {**on_template, "ec2:IsLaunchTemplateResource": str(subnet_from_template)}
    requests = [
        Request(
            "ec2:RunInstances",
            f"{EC2}instance/*",
            {**on_template, **_request_tags(request, "instance")},
        ),
        Request("ec2:RunInstances", f"arn:aws:ec2:{REGION}::image/ami-0123", on_template),
        Request("ec2:RunInstances", f"{EC2}volume/*", on_template),
        Request("ec2:RunInstances", f"{EC2}security-group/sg-0123", on_template),
        Request("ec2:RunInstances", f"{EC2}key-pair/ops", on_template),
        Request("ec2:RunInstances", f"{EC2}subnet/subnet-a", subnet_keys if template else {}),
        Request("ec2:RunInstances", f"{EC2}network-interface/*", subnet_keys if template else {}),
        Request("ec2:RunInstances", f"{EC2}spot-instances-request/*", on_template),
    ]
    if template:
        tags = {"scaler:cluster": CLUSTER} if template_tags is None else template_tags
        keys = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        requests.append(Request("ec2:RunInstances", template, keys))
    return requests


def fleet(request: dict[str, Any], template_tags: dict[str, str] | None = None) -> list[Request]:
    """The CreateFleet authorizations of ``request`` itself (its fleet, instances, template)."""
    tags = {"scaler:cluster": CLUSTER} if template_tags is None else template_tags
    return [
        Request("ec2:CreateFleet", f"{EC2}fleet/*", _request_tags(request, "fleet")),
        Request("ec2:CreateFleet", f"{EC2}instance/*", _request_tags(request, "instance")),
        Request("ec2:CreateFleet", TEMPLATE, {f"aws:ResourceTag/{k}": v for k, v in tags.items()}),
        Request("ec2:CreateFleet", f"{EC2}subnet/subnet-a"),
        Request("ec2:CreateFleet", f"arn:aws:ec2:{REGION}::image/ami-0123"),
    ]


def tagging(request: dict[str, Any]) -> list[Request]:
    return [
        Request(
            "ec2:CreateTags",
            f"{EC2}{kind}/*",
            {"ec2:CreateAction": action, **_request_tags(request, kind)},
        )
        for kind in ("instance", "fleet")
        for action in ("CreateFleet", "RunInstances")
        if (kind, action) != ("fleet", "RunInstances")
    ]


def pass_role(role: str, service: str = "ec2.amazonaws.com") -> Request:
    return Request("iam:PassRole", role, {"iam:PassedToService": service})


def denied(requests: list[Request], document: dict[str, Any]) -> list[str]:
    return [f"{r.action} {r.resource}" for r in requests if not allowed(document, r)]


@pytest.mark.parametrize("subnets", ["subnet-a,subnet-b", ""], ids=["fleet-subnets", "template"])
def test_a_launch_from_the_clusters_template_is_allowed_on_everything_it_touches(
    subnets: str,
) -> None:
    request = fleet_request(subnets)
    every = [*fleet(request), *launch(request), *tagging(request), pass_role(INSTANCE_ROLE)]
    assert denied(every, policy()) == []


def test_a_launch_without_a_template_is_denied() -> None:
    request = fleet_request()
    assert denied(launch(request, template=None), policy()) == [
        f"ec2:RunInstances {r.resource}" for r in launch(request, template=None)
    ]


@pytest.mark.parametrize(
    "resource", ["instance/*", "image/ami-0123", "volume/*", "security-group/sg-0123"]
)
def test_a_launch_overriding_what_the_template_names_is_denied(resource: str) -> None:
    # IsLaunchTemplateResource false: the request names it instead of the template
    (request,) = [r for r in launch(fleet_request(), from_template=False) if resource in r.resource]
    assert not allowed(policy(), request)
    assert allowed(
        policy(),
        Request(
            request.action,
            request.resource,
            {**request.context, "ec2:IsLaunchTemplateResource": "true"},
        ),
    )


@pytest.mark.parametrize("tags", [{"scaler:cluster": "staging"}, {}], ids=["other", "untagged"])
def test_a_template_of_another_cluster_is_denied(tags: dict[str, str]) -> None:
    request = fleet_request()
    assert denied(launch(request, template_tags=tags), policy()) == [f"ec2:RunInstances {TEMPLATE}"]
    assert denied(fleet(request, template_tags=tags), policy()) == [f"ec2:CreateFleet {TEMPLATE}"]


def test_an_instance_not_tagged_with_the_cluster_is_denied() -> None:
    request = fleet_request()
    for spec in request["TagSpecifications"]:
        spec["Tags"] = [t for t in spec["Tags"] if t["Key"] != "scaler:cluster"]
    assert f"ec2:RunInstances {EC2}instance/*" in denied(launch(request), policy())
    assert f"ec2:CreateFleet {EC2}fleet/*" in denied(fleet(request), policy())


def test_only_the_named_instance_roles_may_be_passed_and_only_to_ec2() -> None:
    assert allowed(policy(), pass_role(INSTANCE_ROLE))
    assert not allowed(policy(), pass_role(f"arn:aws:iam::{ACCOUNT}:role/admin"))
    assert not allowed(policy(), pass_role(INSTANCE_ROLE, "lambda.amazonaws.com"))
    assert not allowed(policy(), Request("iam:PassRole", INSTANCE_ROLE))


def test_without_instance_roles_nothing_may_be_passed_to_ec2() -> None:
    document = policy(instance_roles=())
    assert not allowed(document, pass_role(INSTANCE_ROLE))
    assert not any("${" in json.dumps(s) for s in document["Statement"])
    two = policy(instance_roles=(INSTANCE_ROLE, f"arn:aws:iam::{ACCOUNT}:role/other"))
    assert allowed(two, pass_role(f"arn:aws:iam::{ACCOUNT}:role/other"))


def test_the_evaluator_denies_when_a_condition_key_is_missing() -> None:
    # not vacuous: each key the launch statements ask for is needed
    (instance,) = [r for r in launch(fleet_request()) if "instance/" in r.resource]
    assert allowed(policy(), instance)
    for key in (
        "ec2:LaunchTemplate",
        "ec2:IsLaunchTemplateResource",
        "aws:RequestTag/scaler:cluster",
    ):
        context = {k: v for k, v in instance.context.items() if k != key}
        assert not allowed(policy(), Request(instance.action, instance.resource, context)), key


def test_the_evaluator_follows_iams_rules() -> None:
    allow = {"Effect": "Allow", "Action": "ec2:Run*", "Resource": "arn:aws:ec2:*:*:instance/*"}
    deny = {**allow, "Effect": "Deny", "Condition": {"StringEquals": {"aws:RequestTag/x": "1"}}}
    run = Request("ec2:RunInstances", f"{EC2}instance/*", {"aws:RequestTag/x": "1"})
    assert decide({"Statement": [allow]}, run) == "allow"
    assert decide({"Statement": [allow, deny]}, run) == "deny"
    assert decide({"Statement": []}, run) == "implicit-deny"
    assert decide({"Statement": [allow]}, Request("ec2:StopInstances", run.resource)) != "allow"
    assert decide({"Statement": [allow]}, Request(run.action, f"{EC2}volume/*")) != "allow"
    null = {**allow, "Condition": {"Null": {"aws:ResourceTag/pool": "false"}}}
    assert decide({"Statement": [null]}, run) == "implicit-deny"
    tagged = Request(run.action, run.resource, {"aws:ResourceTag/pool": "a"})
    assert decide({"Statement": [null]}, tagged) == "allow"
    keys = {**allow, "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}}
    assert (
        decide({"Statement": [keys]}, Request(run.action, run.resource, {"aws:TagKeys": ["a"]}))
        == "allow"
    )
    assert (
        decide(
            {"Statement": [keys]}, Request(run.action, run.resource, {"aws:TagKeys": ["a", "b"]})
        )
        == "implicit-deny"
    )
    assert arn_like("arn:aws:ec2:*:*:instance/*", f"{EC2}instance/i-1")
    assert not arn_like("arn:aws:ec2:*:*:instance/*", f"{EC2}volume/instance/x")
    with pytest.raises(ValueError, match="NumericLessThan"):
        decide({"Statement": [{**allow, "Condition": {"NumericLessThan": {"k": "1"}}}]}, run)


class _TaggedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that keeps ``!Tag value`` as ``{"!Tag": value}``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {f"!{suffix}": loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {f"!{suffix}": loader.construct_sequence(node, deep=True)}
    return {f"!{suffix}": loader.construct_mapping(node, deep=True)}


_TaggedLoader.add_multi_constructor("!", _tagged)


def test_the_cloudformation_template_passes_only_the_roles_it_is_given() -> None:
    template = yaml.load(policy_module().TEMPLATE.read_text(), Loader=_TaggedLoader)
    parameter = template["Parameters"]["InstanceRoleArns"]
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    condition = template["Conditions"]["HasInstanceRoleArns"]
    assert condition == {"!Not": [{"!Equals": [{"!Join": ["", {"!Ref": "InstanceRoleArns"}]}, ""]}]}
    main, extra = template["Resources"]["TaskRole"]["Properties"]["Policies"]
    assert "ec2.amazonaws.com" not in json.dumps(main)  # only the conditional policy passes
    name, policy_, otherwise = extra["!If"]
    assert name == "HasInstanceRoleArns" and otherwise == {"!Ref": "AWS::NoValue"}
    (statement,) = policy_["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["iam:PassRole"]
    assert statement["Resource"] == {"!Ref": "InstanceRoleArns"}
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


@pytest.mark.parametrize("key", [surges.TAG, surges.ROLL_TAG])
@pytest.mark.parametrize("action", ["ecs:TagResource", "ecs:UntagResource"])
def test_every_mark_the_scaler_puts_on_a_service_is_allowed(key: str, action: str) -> None:
    """The rebalancer's and the roll's (and the warning's) surge marks: IAM checks each tag key
    written or removed against the policy's ``aws:TagKeys`` condition."""
    service = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/web"
    document = policy()
    assert allowed(document, Request(action, service, {"aws:TagKeys": [key]}))
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/staging/web"
    assert not allowed(document, Request(action, other, {"aws:TagKeys": [key]}))
    assert not allowed(document, Request(action, service, {"aws:TagKeys": ["owner"]}))
