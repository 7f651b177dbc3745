"""A simulated account for the service tests: one world, its EC2, Auto Scaling and CloudWatch
behind real aiobotocore clients, on virtual time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from scaler.aws.clients import AwsClients, AwsTarget
from scaler.events import Signal
from scaler.metrics import Metrics
from scaler.sim.cloud.autoscaling import AutoScaling
from scaler.sim.cloud.cloudwatch import CloudWatch
from scaler.sim.cloud.ec2 import Ec2
from scaler.sim.cloud.transport import SimulatedAws
from scaler.sim.cloud.vloop import run
from scaler.sim.cloud.world import World
from scaler.sim.engine import Sim

TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))


@dataclass
class Account:
    world: World
    ec2: Ec2
    autoscaling: AutoScaling
    cloudwatch: CloudWatch
    aws: AwsClients
    simulated: SimulatedAws


def in_account(body: Callable[[Account], Awaitable[Any]], **ec2_options: Any) -> Any:
    """Run ``body`` in a fresh account on a virtual-time loop; its result."""

    async def main() -> Any:
        world = World()
        ec2 = Ec2(world, **ec2_options)
        autoscaling = AutoScaling(world, ec2)
        cloudwatch = CloudWatch(world)
        services = {"ec2": ec2, "autoscaling": autoscaling, "cloudwatch": cloudwatch}
        simulated = SimulatedAws(services)
        async with AwsClients(TARGET, Metrics(), simulated.install) as aws:
            return await body(Account(world, ec2, autoscaling, cloudwatch, aws, simulated))

    return run(main())


class Idle:
    """The engine's policy when no one acts on the signals: each warned instance's tasks die
    with it (the world left alone, to compare with)."""

    name = "idle"

    def start(self, sim: Sim) -> None:
        pass

    def on_signal(self, sim: Sim, signal: Signal) -> None:
        pass
