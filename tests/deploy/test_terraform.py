"""The Terraform module (deploy/terraform) is the CloudFormation template's twin.

There need be no ``terraform`` binary: every ``.tf`` file is parsed with python-hcl2 and compared
with ``deploy/cloudformation/scaler.yaml``, read with a YAML loader that turns the short-form
intrinsic tags (``!Sub``, ``!GetAtt``, ``!Ref``...) into plain values. Only literal parts are
compared; references are checked to point where they should. Where ``terraform`` is installed,
the expressions that build the task policy are also evaluated with ``terraform console``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "deploy/terraform"
TEMPLATE = ROOT / "deploy/cloudformation/scaler.yaml"
POLICY = ROOT / "deploy/iam/task-role-policy.json"

CFN_TO_TF = {
    "AWS::SQS::Queue": "aws_sqs_queue",
    "AWS::SQS::QueuePolicy": "aws_sqs_queue_policy",
    "AWS::Events::Rule": "aws_cloudwatch_event_rule",
    "AWS::Logs::LogGroup": "aws_cloudwatch_log_group",
    "AWS::IAM::Role": "aws_iam_role",
    "AWS::ECS::TaskDefinition": "aws_ecs_task_definition",
    "AWS::ECS::Service": "aws_ecs_service",
    "AWS::CloudWatch::Alarm": "aws_cloudwatch_metric_alarm",
    "AWS::DynamoDB::Table": "aws_dynamodb_table",
}
# What CloudFormation declares inside a resource and Terraform as resources of their own.
TF_ONLY = {"aws_cloudwatch_event_target", "aws_iam_role_policy", "aws_iam_role_policy_attachment"}
POLICY_VARIABLES = {
    "Partition": "data.aws_partition.current.partition",
    "Region": "data.aws_region.current.name",
    "AccountId": "data.aws_caller_identity.current.account_id",
    "ClusterName": "var.cluster_name",
    "QueueArn": "aws_sqs_queue.events.arn",
    "DeadLetterQueueArn": "aws_sqs_queue.dead_letter.arn",
    "InstanceRoleArns": "local.instance_roles_marker",
}
DETAIL_LITERALS = ("state", "service", "eventTypeCategory", "eventName")
_OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)
_INTERPOLATION = re.compile(r"\$\{[^}]*\}")


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that reads ``!Tag value`` as the plain value."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return document


def cfn_resources(kind: str) -> dict[str, dict[str, Any]]:
    """Properties of the template's resources of CloudFormation type ``kind``, by logical id."""
    return {
        name: resource.get("Properties", {})
        for name, resource in template()["Resources"].items()
        if resource["Type"] == kind
    }


def tf_files() -> list[Path]:
    return sorted(MODULE.glob("*.tf"))


@cache
def parsed(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = hcl2.loads(path.read_text(), serialization_options=_OPTIONS)
    return document


def blocks(kind: str) -> Iterator[dict[str, Any]]:
    for path in tf_files():
        yield from parsed(path).get(kind, [])


@cache
def resources() -> dict[str, dict[str, Any]]:
    """Every resource block's body, by address (``type.name``)."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks("resource"):
        for kind, named in block.items():
            for name, body in named.items():
                address = f"{kind}.{name}"
                assert address not in found, f"{address} declared twice"
                found[address] = body
    return found


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {a.split(".", 1)[1]: b for a, b in resources().items() if a.split(".")[0] == kind}


@cache
def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in blocks("locals"):
        assert not set(block) & set(merged), f"locals declared twice: {set(block) & set(merged)}"
        merged.update(block)
    return merged


def variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks("variable") for name, body in block.items()}


def instances(address: str) -> int:
    """How many instances ``address`` has: 1, ``count``, or the size of what it iterates."""
    body = resources()[address]
    if "count" in body:
        assert isinstance(body["count"], int), f"{address}: count must be a literal"
        return body["count"]
    if "for_each" not in body:
        return 1
    ref = re.fullmatch(r"\$\{(\w+)\.(\w+)\}", body["for_each"])
    assert ref, f"{address}: for_each must be a local or a resource, not {body['for_each']}"
    kind, name = ref.groups()
    return len(locals_()[name]) if kind == "local" else instances(f"{kind}.{name}")


def snake(logical_id: str, suffix: str = "") -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id.removesuffix(suffix)).lower()


def shape(value: str) -> str:
    """``value`` with each interpolation (CloudFormation or Terraform) replaced by ``*``."""
    return _INTERPOLATION.sub("*", value)


def resolve(value: str) -> str:
    """A ``${local.x}`` reference replaced by the local's value."""
    ref = re.fullmatch(r"\$\{local\.(\w+)\}", value)
    return str(locals_()[ref.group(1)]) if ref else value


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: p.name)
def test_every_file_parses(path: Path) -> None:
    assert isinstance(parsed(path), dict)


def test_the_module_has_its_files() -> None:
    names = {p.name for p in tf_files()}
    assert {"versions.tf", "variables.tf", "outputs.tf"} <= names
    assert (MODULE / "README.md").exists()
    (terraform,) = parsed(MODULE / "versions.tf")["terraform"]
    assert terraform["required_version"] == ">= 1.5"
    (providers,) = terraform["required_providers"]
    assert providers["aws"] == {"source": "hashicorp/aws", "version": ">= 5.0"}


def test_the_resource_types_are_the_templates() -> None:
    declared = {template()["Resources"][r]["Type"] for r in template()["Resources"]}
    assert declared <= set(CFN_TO_TF), f"map {declared - set(CFN_TO_TF)} to Terraform types"
    expected = {CFN_TO_TF[kind] for kind in declared} | TF_ONLY
    assert {a.split(".")[0] for a in resources()} == expected


def test_the_resource_counts_are_the_templates() -> None:
    counts = Counter[str]()
    for address in resources():
        counts[address.split(".")[0]] += instances(address)
    for kind, tf_kind in CFN_TO_TF.items():
        assert counts[tf_kind] == len(cfn_resources(kind)), tf_kind
    rules, roles = cfn_resources("AWS::Events::Rule"), cfn_resources("AWS::IAM::Role").values()
    assert counts["aws_cloudwatch_event_target"] == sum(len(r["Targets"]) for r in rules.values())
    # a conditional policy of the template (the instance roles a launch may pass) is a statement
    # of the one Terraform policy, left out there when its list is empty
    unconditional = [p for r in roles for p in r.get("Policies", []) if isinstance(p, dict)]
    assert counts["aws_iam_role_policy"] == len(unconditional)
    assert counts["aws_iam_role_policy_attachment"] == sum(
        len(r.get("ManagedPolicyArns", [])) for r in roles
    )
    assert len(rules) == 7 and len(cfn_resources("AWS::CloudWatch::Alarm")) == 3


def _literal_parts(pattern: dict[str, Any]) -> dict[str, Any]:
    detail = pattern.get("detail", {})
    return {
        "source": pattern["source"],
        "detail-type": pattern["detail-type"],
        "detail keys": sorted(detail),
        **{f"detail.{k}": detail[k] for k in DETAIL_LITERALS if k in detail},
        "clusterArn": [shape(resolve(v)) for v in detail.get("clusterArn", [])],
    }


def test_the_event_patterns_are_the_templates() -> None:
    cfn = {
        snake(name, "Rule"): _literal_parts(props["EventPattern"])
        for name, props in cfn_resources("AWS::Events::Rule").items()
    }
    rules = locals_()["event_rules"]
    tf = {name: _literal_parts(rule["pattern"]) for name, rule in rules.items()}
    assert tf == cfn
    (rule,) = of_type("aws_cloudwatch_event_rule").values()
    assert rule["for_each"] == "${local.event_rules}"
    assert rule["event_pattern"] == "${jsonencode(each.value.pattern)}"


def test_every_rule_sends_to_the_queue_and_only_rules_may() -> None:
    (target,) = of_type("aws_cloudwatch_event_target").values()
    assert target["for_each"] == "${aws_cloudwatch_event_rule.events}"
    assert target["arn"] == "${aws_sqs_queue.events.arn}"
    (policy,) = of_type("aws_sqs_queue_policy").values()
    assert "for rule in aws_cloudwatch_event_rule.events : rule.arn" in policy["policy"]
    assert '"aws:SecureTransport" = "false"' in policy["policy"]


def test_the_queues_are_the_templates() -> None:
    queues = of_type("aws_sqs_queue")
    cfn = cfn_resources("AWS::SQS::Queue")
    for logical_id, name in {"Queue": "events", "DeadLetterQueue": "dead_letter"}.items():
        assert queues[name]["sqs_managed_sse_enabled"] is cfn[logical_id]["SqsManagedSseEnabled"]
        retention = cfn[logical_id]["MessageRetentionPeriod"]
        assert queues[name]["message_retention_seconds"] == retention
    events = queues["events"]
    assert events["receive_wait_time_seconds"] == cfn["Queue"]["ReceiveMessageWaitTimeSeconds"]
    assert events["visibility_timeout_seconds"] == cfn["Queue"]["VisibilityTimeout"]
    receives = cfn["Queue"]["RedrivePolicy"]["maxReceiveCount"]
    assert f"maxReceiveCount = {receives}" in events["redrive_policy"]
    assert "deadLetterTargetArn = aws_sqs_queue.dead_letter.arn" in events["redrive_policy"]


def _cfn_container() -> dict[str, Any]:
    (task,) = cfn_resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["ContainerDefinitions"]
    assert isinstance(container, dict)
    return container


def test_the_container_environment_names_are_the_templates() -> None:
    # the settings both always set; any other comes from the free-form environment
    # (tests/deploy/test_every_setting.py), which CloudFormation adds as conditional entries
    cfn = [e["Name"] for e in _cfn_container()["Environment"] if isinstance(e, dict)]
    assert len(cfn) == len(set(cfn))
    assert set(locals_()["named_environment"]) == set(cfn)


def test_the_container_is_the_templates() -> None:
    cfn, tf = _cfn_container(), locals_()["container"]
    for key in ("Essential", "ReadonlyRootFilesystem", "User", "StopTimeout"):
        assert tf[key[0].lower() + key[1:]] == cfn[key], key
    assert tf["portMappings"] == [
        {"containerPort": p["ContainerPort"], "protocol": p["Protocol"]}
        for p in cfn["PortMappings"]
    ]
    assert tf["healthCheck"] == {k[0].lower() + k[1:]: v for k, v in cfn["HealthCheck"].items()}
    logs = cfn["LogConfiguration"]
    assert tf["logConfiguration"]["logDriver"] == logs["LogDriver"]
    assert set(tf["logConfiguration"]["options"]) == set(logs["Options"])
    (task,) = of_type("aws_ecs_task_definition").values()
    assert task["container_definitions"] == "${jsonencode([local.container])}"


def test_the_task_definition_and_service_are_the_templates() -> None:
    (cfn_task,) = cfn_resources("AWS::ECS::TaskDefinition").values()
    (task,) = of_type("aws_ecs_task_definition").values()
    assert task["requires_compatibilities"] == cfn_task["RequiresCompatibilities"]
    assert task["network_mode"] == cfn_task["NetworkMode"]
    assert (task["cpu"], task["memory"]) == (cfn_task["Cpu"], cfn_task["Memory"])
    (cfn_service,) = cfn_resources("AWS::ECS::Service").values()
    (service,) = of_type("aws_ecs_service").values()
    deployment = cfn_service["DeploymentConfiguration"]
    assert service["name"] == cfn_service["ServiceName"]
    assert service["launch_type"] == cfn_service["LaunchType"]
    assert service["desired_count"] == cfn_service["DesiredCount"]
    assert service["deployment_minimum_healthy_percent"] == deployment["MinimumHealthyPercent"]
    assert service["deployment_maximum_percent"] == deployment["MaximumPercent"]
    (breaker,) = service["deployment_circuit_breaker"]
    assert breaker == {"enable": True, "rollback": True}
    assert service["propagate_tags"] == cfn_service["PropagateTags"]
    assert service["enable_execute_command"] is False


def test_the_alarms_are_the_templates() -> None:
    fields = {
        "Namespace": "namespace",
        "MetricName": "metric_name",
        "Statistic": "statistic",
        "Period": "period",
        "EvaluationPeriods": "evaluation_periods",
        "Threshold": "threshold",
        "ComparisonOperator": "comparison_operator",
        "TreatMissingData": "treat_missing_data",
    }
    cfn = {tuple(a[k] for k in fields) for a in cfn_resources("AWS::CloudWatch::Alarm").values()}
    alarms = of_type("aws_cloudwatch_metric_alarm").values()
    assert {tuple(a[v] for v in fields.values()) for a in alarms} == cfn
    assert all(a["alarm_actions"] == "${local.alarm_actions}" for a in alarms)
    assert locals_()["alarm_actions"] == (
        "${var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]}"
    )


def test_the_variables_are_declared_described_and_validated() -> None:
    declared = variables()
    text = "\n".join(p.read_text() for p in tf_files())
    used = set(re.findall(r"\bvar\.([A-Za-z_][\w-]*)", text))
    assert used - set(declared) == set(), "referenced but not declared"
    assert set(declared) - used == set(), "declared but never used"
    assert all(body.get("description") for body in declared.values())
    parameters = template()["Parameters"]
    pattern = parameters["ClusterName"]["AllowedPattern"]
    (cluster,) = declared["cluster_name"]["validation"]
    assert json.dumps(pattern) in cluster["condition"]
    (retention,) = declared["log_retention_days"]["validation"]
    listed = re.search(r"contains\(\[([\d, ]+)\]", retention["condition"])
    assert listed, retention["condition"]
    assert [int(v) for v in listed.group(1).split(",")] == parameters["LogRetentionDays"][
        "AllowedValues"
    ]
    assert declared["log_retention_days"]["default"] == parameters["LogRetentionDays"]["Default"]
    # the CloudFormation "true"/"false" and ENABLED/DISABLED choices are Terraform booleans
    assert declared["dry_run"]["type"] == declared["assign_public_ip"]["type"] == "bool"
    assert declared["dry_run"]["default"] is True
    assert declared["assign_public_ip"]["default"] is False
    assert declared["alarm_topic_arn"]["default"] is None


def test_the_outputs_are_the_templates() -> None:
    outputs = {name for block in blocks("output") for name in block}
    assert outputs == {snake(name) for name in template()["Outputs"]}


def test_the_task_role_policy_is_the_shared_file() -> None:
    (policy,) = of_type("aws_iam_role_policy").values()
    assert policy["policy"] == "${jsonencode(local.task_policy)}"
    source = locals_()["task_policy_source"]
    call = re.fullmatch(
        r'\$\{jsondecode\(templatefile\("\$\{path\.module\}/(\.\./iam/task-role-policy\.json)", '
        r"\{(.*)\}\)\)\}",
        source,
    )
    assert call, source
    # the statement on the list placeholder (a marker string here) takes the role list, or goes
    marker = locals_()["instance_roles_marker"]
    assert marker not in POLICY.read_text()
    statements = locals_()["task_policy"]["Statement"]
    assert "s.Resource != local.instance_roles_marker" in statements
    assert "merge(s, {Resource = var.instance_role_arns})" in statements
    assert "length(var.instance_role_arns) > 0" in statements
    assert (MODULE / call.group(1)).resolve() == POLICY
    assert dict(re.findall(r"(\w+) = ([\w.]+)", call.group(2))) == POLICY_VARIABLES
    placeholders = set(re.findall(r"\$\{(\w+)\}", POLICY.read_text()))
    assert placeholders == set(POLICY_VARIABLES)
    # written once: no .tf file repeats the policy's statements (the queue policy names
    # sqs:SendMessage for EventBridge, so SQS actions are not looked for)
    text = "\n".join(p.read_text() for p in tf_files())
    assert "aws_iam_policy_document" not in text
    for statement in json.loads(POLICY.read_text())["Statement"]:
        assert statement["Sid"] not in text
        repeated = [a for a in statement["Action"] if not a.startswith("sqs:") and a in text]
        assert not repeated, repeated


def _terraform_policy(instance_role_arns: list[str], scratch: Path) -> dict[str, Any]:
    """The task policy as the module's expressions build it, evaluated by ``terraform
    console`` (no provider needed: the data sources are given as literals)."""
    statements = locals_()["task_policy"]["Statement"]
    assert statements.startswith("${") and statements.endswith("}")
    literals = {
        "Partition": '"aws"',
        "Region": '"eu-west-1"',
        "AccountId": '"123456789012"',
        "ClusterName": '"prod"',
        "QueueArn": '"arn:aws:sqs:eu-west-1:123456789012:q"',
        "DeadLetterQueueArn": '"arn:aws:sqs:eu-west-1:123456789012:dlq"',
        "InstanceRoleArns": "local.instance_roles_marker",
    }
    variables = ", ".join(f"{k} = {v}" for k, v in literals.items())
    source = f"templatefile({json.dumps(str(POLICY))}, {{{variables}}})"
    (scratch / "main.tf").write_text(
        'variable "instance_role_arns" {\n  type = list(string)\n}\n'
        "locals {\n"
        f"  instance_roles_marker = {json.dumps(locals_()['instance_roles_marker'])}\n"
        f"  task_policy_source = jsondecode({source})\n"
        f"  statements = {statements[2:-1]}\n"
        "}\n"
    )
    reply = subprocess.run(
        ["terraform", "console", f"-var=instance_role_arns={json.dumps(instance_role_arns)}"],
        input="jsonencode(local.statements)\n",
        capture_output=True,
        text=True,
        cwd=scratch,
        timeout=60,
        check=True,
    )
    document: dict[str, Any] = {"Statement": json.loads(json.loads(reply.stdout.strip()))}
    return document


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary")
@pytest.mark.parametrize("roles", [[], ["arn:aws:iam::123456789012:role/a"]], ids=["none", "one"])
def test_terraform_passes_exactly_the_roles_it_is_given(roles: list[str], tmp_path: Path) -> None:
    policy = _terraform_policy(roles, tmp_path)
    passing = [s for s in policy["Statement"] if "ec2.amazonaws.com" in json.dumps(s)]
    assert passing == ([] if not roles else [{**passing[0], "Resource": roles}])
    assert len(policy["Statement"]) == len(json.loads(POLICY.read_text())["Statement"]) - (
        not roles
    )
    assert "instance-role-arns" not in json.dumps(policy)
