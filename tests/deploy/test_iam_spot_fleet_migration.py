"""What the task role may do to a Spot Fleet being migrated, as docs/migrate-from-spot-fleet.md
tells operators to tag it: the fleet request and its instances tagged ``scaler:cluster``, and
nothing more. Checked with the policy evaluator (tests/deploy/iam_eval.py) on the shipped
policy: the untagged fleet and the untagged instance (one the fleet launched after the tagging)
are refused, as the guide says.
"""

from __future__ import annotations

from tests.deploy.iam_eval import Request, Value, allowed
from tests.deploy.test_iam import ACCOUNT, CLUSTER, REGION, policy

FLEET = f"arn:aws:ec2:{REGION}:{ACCOUNT}:spot-fleet-request/sfr-0123456789abcdef0"
INSTANCE = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
OURS = {"aws:ResourceTag/scaler:cluster": CLUSTER}
RETIRING = {"aws:TagKeys": ["scaler:retiring"], "aws:RequestTag/scaler:retiring": "migration"}


def _may(action: str, resource: str, **context: Value) -> bool:
    return allowed(policy(), Request(action, resource, context))


def test_a_fleet_tagged_with_the_cluster_may_be_lowered_and_no_other() -> None:
    assert _may("ec2:ModifySpotFleetRequest", FLEET, **OURS)
    assert not _may("ec2:ModifySpotFleetRequest", FLEET)
    assert not _may(
        "ec2:ModifySpotFleetRequest", FLEET, **{"aws:ResourceTag/scaler:cluster": "other"}
    )


def test_only_an_instance_tagged_with_the_cluster_may_be_marked_retiring() -> None:
    assert _may("ec2:CreateTags", INSTANCE, **OURS, **RETIRING)
    assert not _may("ec2:CreateTags", INSTANCE, **RETIRING), "a fleet's untagged instance"
    other_keys = {"aws:TagKeys": ["scaler:cluster"], "aws:RequestTag/scaler:cluster": CLUSTER}
    assert not _may("ec2:CreateTags", INSTANCE, **other_keys), "the scaler cannot tag it ours"


def test_only_an_instance_tagged_ours_and_retiring_by_migration_may_be_terminated() -> None:
    both = {**OURS, "aws:ResourceTag/scaler:retiring": "migration"}
    assert _may("ec2:TerminateInstances", INSTANCE, **both)
    assert not _may("ec2:TerminateInstances", INSTANCE, **OURS), "tagged ours, not retiring"
    assert not _may(
        "ec2:TerminateInstances", INSTANCE, **{"aws:ResourceTag/scaler:retiring": "migration"}
    )
    drift = {**OURS, "aws:ResourceTag/scaler:retiring": "drift"}
    assert not _may("ec2:TerminateInstances", INSTANCE, **drift), "no pool: not a template's"


def test_the_fleet_is_read_whatever_its_tags() -> None:
    assert _may("ec2:DescribeSpotFleetRequests", "*")
    assert _may("ec2:DescribeSpotFleetInstances", "*")
