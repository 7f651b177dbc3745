"""The simulator: a deterministic, virtual-clock ECS cluster on Spot, for policies side by side.

It runs the ECS behaviour model (:mod:`scaler.ecs`) under a spot market with interruptions and
storms, and lets a *policy* (the scaler's own decision code, or a baseline) react to the same
signals AWS would send. Accounting integrates availability, cost and hot spots over the run.
"""
