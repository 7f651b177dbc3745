"""The simulated scaler's settings: a scenario file's ``[settings]`` table, and ``SCALER_*``
variables given to ``scaler simulate``.

Keys are the environment variable names (``SCALER_HEADROOM = 0.1``), values are checked by the
real :class:`~scaler.settings.Settings`, so a value the scaler would refuse at start-up is
refused here, one line naming the key. The simulated scaler is built from these values alone
(:func:`world_settings`), never from the process environment: ``scaler simulate`` passes the
``SCALER_*`` variables it was started with explicitly (they win over the table, as the more
specific choice) and prints them, so a run's figures follow from what it printed. Settings
left out take their defaults; the cluster, the queue, the lease table and the pools are the
simulated world's (:data:`WORLD`), whatever the table or the environment say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from scaler.settings import ENV_PREFIX, Settings, _problems, unknown_variables


class _FileOnly(Settings):
    """:class:`Settings` from the values given, never from the environment or a dotenv file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_problems(table: Mapping[str, Any]) -> list[str]:
    """One line per key of ``table`` that is no setting or has a value Settings refuses, each
    starting with the key and a colon."""
    foreign = [
        f"{key}: not a SCALER_* setting; name each setting as its environment variable"
        for key in table
        if not key.upper().startswith(ENV_PREFIX)
    ]
    unknown = unknown_variables({k: "" for k in table if k.upper().startswith(ENV_PREFIX)})
    if foreign or unknown:
        return foreign + unknown
    try:
        file_settings(table)
    except ValidationError as exc:
        return _problems(exc, ENV_PREFIX)
    return []


def file_settings(table: Mapping[str, Any]) -> Settings:
    """The settings ``table`` gives (validated; :class:`ValidationError` if refused)."""
    values = field_values(table)
    values.setdefault("cluster", "simulated")
    values.setdefault("spot_pools", "scenario")  # the scaler's pools are the scenario's
    return _FileOnly(**values)


# the simulated world's own: its cluster, queue, lease table and the pools made from the scenario
WORLD = frozenset(
    {
        "SCALER_CLUSTER",
        "SCALER_QUEUE_URL",
        "SCALER_LEASE_TABLE",
        "SCALER_SPOT_POOLS",
        "SCALER_ON_DEMAND_POOLS",
        "SCALER_SPOT_TEMPLATES",
        "SCALER_ON_DEMAND_TEMPLATES",
        "SCALER_FLEET_INSTANCE_TYPES",
        "SCALER_FLEET_SUBNETS",
    }
)


def environment_settings(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``SCALER_*`` variables of ``environ`` the simulated scaler takes, and those it
    ignores because the simulated world sets them (:data:`WORLD`)."""
    given = {k.upper(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    return {k: v for k, v in given.items() if k not in WORLD}, sorted(set(given) & WORLD)


def world_settings(values: Mapping[str, Any]) -> Settings:
    """:class:`Settings` of the field ``values`` given, never read from the environment."""
    return _FileOnly(**values)


def field_values(table: Mapping[str, Any]) -> dict[str, Any]:
    """``SCALER_*`` keys as :class:`Settings` field names."""
    return {k.upper().removeprefix(ENV_PREFIX).lower(): v for k, v in table.items()}
