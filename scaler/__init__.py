"""scaler: a Spot capacity autoscaler for Amazon ECS clusters."""

__version__ = "0.1.0"
