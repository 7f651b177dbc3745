"""Launch templates, as the world registers them: numbered versions, one of them the default.

A version is named ``$Default``, ``$Latest`` or by its number; a template by its id
(``lt-...``) or its name, and an unknown one is EC2's ``NotFound`` error for that form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaler.sim.cloud.transport import AwsError


@dataclass
class TemplateVersion:
    number: int
    instance_type: str
    image_id: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class LaunchTemplate:
    id: str
    name: str
    versions: list[TemplateVersion] = field(default_factory=list)
    default: int = 1

    def version(self, asked: str) -> TemplateVersion | None:
        """The version ``$Default``, ``$Latest`` or a number names; None if there is none."""
        number = {"$Default": self.default, "$Latest": len(self.versions)}.get(asked)
        if number is None:
            number = int(asked) if asked.isdigit() else 0
        return self.versions[number - 1] if 1 <= number <= len(self.versions) else None

    def resolve(self, asked: str) -> TemplateVersion:
        """Like :meth:`version`, refusing a version there is not."""
        found = self.version(asked)
        if found is None:
            raise AwsError(
                "InvalidLaunchTemplateId.VersionNotFound",
                f"Could not find launch template version {asked} for template {self.id}.",
            )
        return found


class Templates:
    """The launch templates of one region, by name."""

    def __init__(self) -> None:
        self.by_name: dict[str, LaunchTemplate] = {}

    def add(
        self, name: str, instance_type: str, image_id: str, tags: dict[str, str] | None = None
    ) -> LaunchTemplate:
        """Register ``name`` (or add a version to it, made its default)."""
        found = self.by_name.get(name)
        if found is None:
            found = LaunchTemplate(f"lt-{len(self.by_name) + 1:017x}", name)
            self.by_name[name] = found
        number = len(found.versions) + 1
        found.versions.append(TemplateVersion(number, instance_type, image_id, dict(tags or {})))
        found.default = number
        return found

    def find(self, spec: dict[str, Any]) -> LaunchTemplate:
        """The template a ``LaunchTemplateSpecification`` (by id or by name) names."""
        if "LaunchTemplateName" in spec:
            name = spec["LaunchTemplateName"]
            if name in self.by_name:
                return self.by_name[name]
            raise AwsError(
                "InvalidLaunchTemplateName.NotFoundException",
                f"The specified launch template, with template name {name}, does not exist.",
            )
        tid = spec.get("LaunchTemplateId", "")
        for found in self.by_name.values():
            if found.id == tid:
                return found
        raise AwsError(
            "InvalidLaunchTemplateId.NotFound",
            f"The specified launch template, with template ID {tid}, does not exist.",
        )
