"""A model of how ECS places, schedules and drains tasks.

moto stores ECS state but does not behave like ECS. This package is the one model of ECS
behaviour the project uses: the simulator runs on it, the demo uses it to make moto's ECS behave,
and planners use it to predict where ECS will put a task. Rules and their sources:
``shared/notes/ecs-semantics.md`` (placement pipeline, strategies, draining within
minimumHealthyPercent / maximumPercent, task start and health delays).
"""
