"""A model of how ECS places, schedules and drains tasks.

moto stores ECS state but does not behave like ECS. This package is the one model of ECS
behaviour the project uses: the simulator runs on it, the demo uses it to make moto's ECS behave,
and planners use it to predict where ECS will put a task.

The rules follow the Amazon ECS Developer Guide and API reference; each module states the ones it
models:

- ``cluster``: instance and task lifecycles (``launching -> ACTIVE -> DRAINING -> terminated``;
  ``PENDING -> RUNNING -> STOPPED``, healthy once a task's start and health delays have passed).
- ``placement``: the placement pipeline (resources, binding constraints, then best-effort
  strategies in order: binpack, spread over the service's own tasks, random).
- ``scheduler``: the service scheduler. It replaces tasks on DRAINING instances and tasks of old
  revisions, starting replacements first as far as ``maximumPercent`` allows and stopping old
  tasks only while ``minimumHealthyPercent`` holds (so min 100% / max 100% never finishes
  draining).
"""
