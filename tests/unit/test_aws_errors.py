"""Every kind of AWS trouble becomes one line with the right exit status (botocore's own
exception classes, built as botocore builds them)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from scaler.aws.clients import SERVICE_KEY
from scaler.aws.errors import AwsFailure, Context, checked, explain

CONTEXT = Context(
    region="eu-west-1",
    cluster="prod",
    queue_url="https://sqs.eu-west-1.amazonaws.com/1/events",
    lease_table="leases",
)


def answer(code: str, operation: str, service: str, status: int = 400) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": "It said\nno."},
        "ResponseMetadata": {"HTTPStatusCode": status},
        SERVICE_KEY: service,
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("exc", "line", "status", "transient"),
    [
        (
            answer("UnauthorizedOperation", "DescribeInstances", "ec2", 403),
            "access denied to ec2:DescribeInstances; the scaler's task role needs "
            "ec2:DescribeInstances (see deploy/iam)",
            2,
            False,
        ),
        (
            answer("AccessDenied", "DeleteMessageBatch", "sqs"),
            "access denied to sqs:DeleteMessage; the scaler's task role needs sqs:DeleteMessage "
            "(see deploy/iam)",
            2,
            False,
        ),
        (
            answer("ResourceNotFoundException", "DescribeTable", "dynamodb"),
            "SCALER_LEASE_TABLE: table 'leases' not found; create it (see deploy/) or unset "
            "SCALER_LEASE_TABLE",
            2,
            False,
        ),
        (
            answer("QueueDoesNotExist", "GetQueueAttributes", "sqs"),
            "SCALER_QUEUE_URL: queue https://sqs.eu-west-1.amazonaws.com/1/events does not "
            "exist; create it (see deploy/) or set SCALER_QUEUE_URL to the existing queue's URL",
            2,
            False,
        ),
        (
            answer("UnrecognizedClientException", "ListClusters", "ecs"),
            "AWS rejected the credentials (UnrecognizedClientException on ecs:ListClusters); "
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            2,
            False,
        ),
        (
            answer("Throttling", "DescribeAutoScalingGroups", "autoscaling"),
            "AWS is throttling autoscaling:DescribeAutoScalingGroups; try again later",
            1,
            True,
        ),
        (
            answer("InternalError", "ListServices", "ecs", 500),
            "AWS failed ecs:ListServices (InternalError); try again later",
            1,
            True,
        ),
        (
            answer("InvalidParameterException", "ListServices", "ecs"),
            "AWS refused ecs:ListServices: InvalidParameterException (It said no.); check the "
            "settings it was called with (SCALER_CLUSTER, AWS_REGION...)",
            2,
            False,
        ),
        (
            EndpointConnectionError(endpoint_url="https://ecs.eu-west-1.amazonaws.com/"),
            "cannot reach AWS at https://ecs.eu-west-1.amazonaws.com/; check the network route "
            "to AWS (NAT, VPC endpoints, security groups) and AWS_REGION",
            2,
            True,
        ),
        (
            ConnectTimeoutError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/"),
            "cannot reach AWS at https://sqs.eu-west-1.amazonaws.com/; check the network route "
            "to AWS (NAT, VPC endpoints, security groups) and AWS_REGION",
            2,
            True,
        ),
        (
            ReadTimeoutError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/"),
            "AWS at https://sqs.eu-west-1.amazonaws.com/ did not answer in time; check the "
            "network and AWS's health; try again later",
            1,
            True,
        ),
        (
            PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            "incomplete AWS credentials: AWS_SECRET_ACCESS_KEY is missing (env); set it, or "
            "remove the partial credentials",
            2,
            False,
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_each_kind_of_trouble_is_one_line(
    exc: Exception, line: str, status: int, transient: bool
) -> None:
    problem = explain(exc, CONTEXT)
    assert problem is not None
    assert (problem.line, problem.status, problem.transient) == (line, status, transient)
    assert "\n" not in problem.line


def test_what_is_not_about_aws_is_left_alone() -> None:
    assert explain(KeyError("x"), CONTEXT) is None


async def test_checked_turns_aws_trouble_into_a_failure_and_leaves_bugs_alone() -> None:
    async def no_credentials() -> None:
        raise NoCredentialsError()

    async def bug() -> None:
        raise KeyError("x")

    with pytest.raises(AwsFailure) as failed:
        await checked(no_credentials(), CONTEXT)
    assert failed.value.problem.line.startswith("no AWS credentials found; ")
    with pytest.raises(KeyError):
        await checked(bug(), CONTEXT)
