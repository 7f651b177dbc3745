"""Simulated EC2: the instances of the :class:`~scaler.sim.cloud.world.World`, as EC2 shows them.

- ``DescribeInstances`` is eventually consistent: an instance launched less than
  ``describe_lag`` seconds ago is not in its answers yet (a filter leaves it out; asked for by
  id it is ``InvalidInstanceID.NotFound``). Filters ``instance-id``, ``instance-state-name``,
  ``tag:<key>`` and ``tag-key`` are understood (values OR-ed, filters AND-ed); any other is
  refused as EC2 refuses an unknown filter. With ``MaxResults`` (5 to 1000) the answer pages
  with ``NextToken``. A terminated instance stays visible for ``TERMINATED_SHOWN`` seconds
  after its terminate (an hour, as in EC2), then is gone from every answer. An instance's
  description is built once for each state and set of tags it has (the rest never changes) and
  given as a new dict at each answer.
- Launch templates are registered by the world (:meth:`Ec2.template`), each with numbered
  versions and a default one; ``DescribeLaunchTemplateVersions`` resolves ``$Default``,
  ``$Latest`` and numbers (a version there is not fails the call).
- ``DescribeInstanceTypes`` knows a small table of types; one unknown type fails the call
  (``InvalidInstanceType``), as EC2 does.
- ``CreateTags`` and ``TerminateInstances`` act on the world at once (an unknown id fails the
  whole call); ``DescribeSpotPriceHistory`` reports a constant price per pool.

EC2 Fleet (:mod:`.fleets`) and Spot Fleet (:mod:`.spot_fleets`) are mixed in here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaler.sim.cloud.catalog import TYPES
from scaler.sim.cloud.fleets import Fleets
from scaler.sim.cloud.launch_templates import LaunchTemplate, Templates, TemplateVersion
from scaler.sim.cloud.spot_fleets import SpotFleets
from scaler.sim.cloud.transport import AwsError
from scaler.sim.cloud.world import SPOT, TERMINATED, Ec2Instance, World

TERMINATED_SHOWN = 3600.0
TagItems = tuple[tuple[str, str], ...]
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}


class Ec2(Fleets, SpotFleets):
    """EC2 of one region, over ``world``'s instances."""

    def __init__(
        self,
        world: World,
        describe_lag: float = 5.0,
        subnets: dict[str, str] | None = None,
        region: str = "us-east-1",
        types: Mapping[str, tuple[int, int, float]] | None = None,
    ) -> None:
        self.world = world
        # name -> (vCPUs, MiB, on-demand USD an hour): the catalog's, and the world's own
        self.types = {**TYPES, **(types or {})}
        self.describe_lag = describe_lag
        self.region = region
        self.subnets = subnets or {f"subnet-{z}": f"{region}{z}" for z in "abc"}  # id -> AZ
        self.templates = Templates()
        self._ended: dict[str, float] = {}  # instance id -> when its terminate began
        # instance id -> (the instance, its state, its tags, its description): kept while the
        # state and tags are the same (the rest of a description never changes)
        self._described: dict[str, tuple[Ec2Instance, str, TagItems, dict[str, Any]]] = {}
        world.on_terminated.append(self._ending)
        super().__init__()

    # -- launch templates (made by the world) ---------------------------------------------

    def template(
        self, name: str, instance_type: str, image_id: str, tags: dict[str, str] | None = None
    ) -> LaunchTemplate:
        """Register the launch template ``name`` (or a new default version of it)."""
        return self.templates.add(name, instance_type, image_id, tags)

    async def describe_launch_template_versions(
        self, Versions: list[str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        found = self.templates.find(spec)
        asked = Versions or [str(v.number) for v in found.versions]
        return {"LaunchTemplateVersions": [_version(found, found.resolve(a)) for a in asked]}

    # -- instances ------------------------------------------------------------------------

    def _ending(self, inst: Ec2Instance) -> None:
        self._ended.setdefault(inst.id, self.world.now())

    def visible(self, inst: Ec2Instance, now: float | None = None) -> bool:
        """Whether DescribeInstances shows ``inst`` at ``now`` (by default the loop's time):
        not yet (eventual consistency), or no longer (an hour after its terminate)."""
        now = self.world.now() if now is None else now
        ended = self._ended.get(inst.id)
        gone = ended is not None and now - ended > TERMINATED_SHOWN
        return now - inst.launched >= self.describe_lag and not gone

    async def describe_instances(
        self,
        InstanceIds: list[str] | None = None,
        Filters: list[dict[str, Any]] | None = None,
        MaxResults: int | None = None,
        NextToken: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        _check_page(InstanceIds, MaxResults)
        for spec in Filters or []:
            _check_filter(spec["Name"])
        now = self.world.now()
        shown = [i for i in self.world.instances.values() if self.visible(i, now)]
        if InstanceIds:
            shown = self._by_ids(shown, InstanceIds)
        filters = [(f["Name"], set(f.get("Values", []))) for f in Filters or []]
        matched = [i for i in shown if all(_matches(i, *f) for f in filters)]
        start = int(NextToken.removeprefix("page-")) if NextToken else 0
        end = start + MaxResults if MaxResults else len(matched)
        reply: dict[str, Any] = {"Reservations": [self._reservation(i) for i in matched[start:end]]}
        if end < len(matched):
            reply["NextToken"] = f"page-{end}"
        return reply

    def _by_ids(self, shown: list[Ec2Instance], ids: list[str]) -> list[Ec2Instance]:
        known = {i.id: i for i in shown}
        missing = [i for i in ids if i not in known]
        if missing:
            raise _not_found(missing)
        return [known[i] for i in dict.fromkeys(ids)]

    def _reservation(self, inst: Ec2Instance) -> dict[str, Any]:
        return {
            "ReservationId": "r-" + inst.id[2:],
            "OwnerId": "123456789012",
            "Instances": [self.describe(inst)],
        }

    def describe(self, inst: Ec2Instance) -> dict[str, Any]:
        """``inst`` as DescribeInstances describes it (a new dict each time; what it holds
        is shared by the answers that describe the instance in the same state and tags)."""
        tags = tuple(inst.tags.items())
        kept = self._described.get(inst.id)
        if kept is None or kept[0] is not inst or kept[1] != inst.state or kept[2] != tags:
            kept = self._described[inst.id] = (inst, inst.state, tags, self._description(inst))
        return dict(kept[3])

    def _description(self, inst: Ec2Instance) -> dict[str, Any]:
        described: dict[str, Any] = {
            "InstanceId": inst.id,
            "ImageId": inst.image_id,
            "InstanceType": inst.instance_type,
            "LaunchTime": self.world.wall(inst.launched),
            "Placement": {"AvailabilityZone": inst.az, "Tenancy": "default"},
            "State": {"Code": STATE_CODES[inst.state], "Name": inst.state},
            "Tags": [{"Key": k, "Value": v} for k, v in inst.tags.items()],
        }
        if inst.lifecycle == SPOT:
            described["InstanceLifecycle"] = "spot"
        return described

    def _known(self, ids: list[str]) -> list[Ec2Instance]:
        missing = [i for i in ids if i not in self.world.instances]
        if missing:
            raise _not_found(missing)
        return [self.world.instances[i] for i in dict.fromkeys(ids)]

    async def create_tags(
        self, Resources: list[str], Tags: list[dict[str, str]], **_: Any
    ) -> dict[str, Any]:
        for inst in self._known(Resources):
            inst.tags.update({t["Key"]: t.get("Value", "") for t in Tags})
        return {}

    async def terminate_instances(self, InstanceIds: list[str], **_: Any) -> dict[str, Any]:
        changes = []
        for inst in self._known(InstanceIds):
            before = inst.state
            self.world.terminate(inst)
            after = TERMINATED if before == TERMINATED else inst.state
            changes.append(
                {
                    "InstanceId": inst.id,
                    "PreviousState": {"Code": STATE_CODES[before], "Name": before},
                    "CurrentState": {"Code": STATE_CODES[after], "Name": after},
                }
            )
        return {"TerminatingInstances": changes}

    # -- instance types and prices --------------------------------------------------------

    def _instance_type(self, name: str) -> dict[str, Any]:
        vcpu, memory, _price = self.types[name]
        return {
            "InstanceType": name,
            "VCpuInfo": {"DefaultVCpus": vcpu},
            "MemoryInfo": {"SizeInMiB": memory},
            "SupportedUsageClasses": ["on-demand", "spot"],
        }

    async def describe_instance_types(
        self, InstanceTypes: list[str] | None = None, **_: Any
    ) -> dict[str, Any]:
        names = InstanceTypes or sorted(self.types)
        unknown = [n for n in names if n not in self.types]
        if unknown:
            raise AwsError(
                "InvalidInstanceType",
                f"The following supplied instance types do not exist: [{', '.join(unknown)}]",
            )
        return {"InstanceTypes": [self._instance_type(n) for n in dict.fromkeys(names)]}

    async def describe_spot_price_history(
        self,
        InstanceTypes: list[str] | None = None,
        Filters: list[dict[str, Any]] | None = None,
        ProductDescriptions: list[str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        zones = sorted(set(self.subnets.values()))
        for f in Filters or []:
            if f["Name"] == "availability-zone":
                zones = [z for z in zones if z in f["Values"]]
        history = [
            {
                "AvailabilityZone": az,
                "InstanceType": name,
                "ProductDescription": "Linux/UNIX",
                "SpotPrice": f"{self.world.price(name, az, SPOT):.6f}",
                "Timestamp": self.world.wall(0.0),
            }
            for name in InstanceTypes or sorted(self.types)
            if name in self.types
            for az in zones
        ]
        return {"SpotPriceHistory": history}


def _check_page(ids: list[str] | None, most: int | None) -> None:
    if most is None:
        return
    if ids:
        raise AwsError(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        )
    if not 5 <= most <= 1000:
        raise AwsError(
            "InvalidParameterValue",
            f"Value ( {most} ) for parameter maxResults is invalid. "
            "Expecting a value between 5 and 1000.",
        )


def _check_filter(name: str) -> None:
    if name not in ("instance-id", "instance-state-name", "tag-key") and not name.startswith(
        "tag:"
    ):
        raise AwsError("InvalidParameterValue", f"The filter '{name}' is invalid")


def _matches(inst: Ec2Instance, name: str, values: set[str]) -> bool:
    """Whether ``inst`` passes the filter ``name`` (checked) with ``values``."""
    if name == "instance-id":
        return inst.id in values
    if name == "instance-state-name":
        return inst.state in values
    if name == "tag-key":
        return not values.isdisjoint(inst.tags)
    return inst.tags.get(name[4:]) in values  # tag:<key>


def _not_found(ids: list[str]) -> AwsError:
    listed = ", ".join(f"'{i}'" for i in ids)
    return AwsError("InvalidInstanceID.NotFound", f"The instance IDs {listed} do not exist")


def _version(template: LaunchTemplate, version: TemplateVersion) -> dict[str, Any]:
    data: dict[str, Any] = {"ImageId": version.image_id, "InstanceType": version.instance_type}
    if version.tags:
        tags = [{"Key": k, "Value": v} for k, v in version.tags.items()]
        data["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    return {
        "LaunchTemplateId": template.id,
        "LaunchTemplateName": template.name,
        "VersionNumber": version.number,
        "DefaultVersion": version.number == template.default,
        "LaunchTemplateData": data,
    }
