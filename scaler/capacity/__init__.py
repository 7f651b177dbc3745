"""Capacity top-up, apart from any one AWS: the controller and the ports it works through.

The capacity controller (:mod:`scaler.capacity.controller`) runs the pure planners of
:mod:`scaler.plan` on what a *reader* observed (:mod:`scaler.capacity.observed`) and has an
*actuator* carry the plans out. Reader and actuator are ports (:mod:`scaler.capacity.ports`):
:mod:`scaler.aws.capacity_reader` and :mod:`scaler.aws.capacity_actuator` plug in AWS, a
simulated AWS plugs in its own, and the controller, which neither imports an AWS library nor
reads the wall clock, runs unchanged against either.
"""

LOGGER = "scaler.aws.capacity"  # the capacity logger's name, that logs and the demo follow
