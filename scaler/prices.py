"""Published on-demand prices the scaler needs without calling the Pricing API.

Only estimates use them: the spend cap of the capacity planner, the prices ``scaler snapshot``
writes into a scenario, and the saving consolidation weighs against
``SCALER_CONSOLIDATE_MIN_SAVING`` (spot at a third of on-demand). Types not listed are estimated
per vCPU.
"""

from __future__ import annotations

# us-east-1 Linux on-demand, USD per hour
ON_DEMAND_PRICES = {
    "m5.large": 0.096,
    "m5.xlarge": 0.192,
    "m5.2xlarge": 0.384,
    "c5.large": 0.085,
    "c5.xlarge": 0.17,
    "c5.2xlarge": 0.34,
    "r5.large": 0.126,
    "r5.xlarge": 0.252,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "c6i.xlarge": 0.17,
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
}
PRICE_PER_VCPU_HOUR = 0.048


def on_demand_price(instance_type: str, vcpu: int) -> float:
    """The listed price, or an estimate from the vCPU count."""
    return ON_DEMAND_PRICES.get(instance_type, round(vcpu * PRICE_PER_VCPU_HOUR, 5))


SPOT_SHARE = 1 / 3  # a typical spot price as a share of on-demand (savings of 60-70%)
