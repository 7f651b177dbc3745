"""A scenario file's ``[settings]`` table: ``SCALER_*`` settings for the scaler's policies.

Keys are the environment variable names (``SCALER_HEADROOM = 0.1``), values are checked by the
real :class:`~scaler.settings.Settings`, so a value the scaler would refuse at start-up is
refused here, one line naming the key. Only the file is read: the simulator never looks at the
environment, so a run gives the same figures wherever it runs. Settings the table leaves out
take their defaults; ``SCALER_CLUSTER`` and the pool settings may be left out (the simulated
cluster has a name, and the scaler's pools are the scenario's, whatever they say).
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
    values = {k.upper().removeprefix(ENV_PREFIX).lower(): v for k, v in table.items()}
    values.setdefault("cluster", "simulated")
    values.setdefault("spot_pools", "scenario")  # the scaler's pools are the scenario's
    return _FileOnly(**values)
