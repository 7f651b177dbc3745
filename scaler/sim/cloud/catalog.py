"""The instance types the simulated EC2 knows: vCPUs, memory and the on-demand price
(us-east-1 Linux, USD an hour). A spot instance costs ``SPOT_SHARE`` of it, constant."""

from __future__ import annotations

TYPES = {  # name -> (vCPUs, MiB, on-demand USD an hour)
    "t3.medium": (2, 4096, 0.0416),
    "m5.large": (2, 8192, 0.096),
    "m5.xlarge": (4, 16384, 0.192),
    "m5.2xlarge": (8, 32768, 0.384),
    "c5.large": (2, 4096, 0.085),
    "c5.xlarge": (4, 8192, 0.17),
    "r5.large": (2, 16384, 0.126),
    "r5.xlarge": (4, 32768, 0.252),
}
SPOT_SHARE = 0.35


def price(instance_type: str, spot: bool = False) -> float:
    """The hourly price of ``instance_type`` (1.0 for a type not in the table)."""
    on_demand = TYPES[instance_type][2] if instance_type in TYPES else 1.0
    return on_demand * SPOT_SHARE if spot else on_demand
