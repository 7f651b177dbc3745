"""Every setting `scaler config` lists can be deployed with either template.

The common settings are named parameters (CloudFormation) and variables (Terraform); any other
goes through the free-form environment: the ``ExtraEnvironment<N>Name``/``Value`` parameter
slots of ``deploy/cloudformation/scaler.yaml``, the ``extra_environment`` map of
``deploy/terraform``. The settings are read from :class:`scaler.settings.Settings`, never listed
here, and each is put through both templates: the CloudFormation container environment is
evaluated (``!Ref``, ``!If``, conditions, ``AWS::NoValue``) for given parameter values, after the
parameters' own constraints and the template's rules; the Terraform one by evaluating the
module's environment expression and the variable's validations, which must keep the shapes
recognised here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from scaler.settings import ENV_PREFIX, Settings
from tests.deploy.test_terraform import locals_, variables

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy/cloudformation/scaler.yaml"
SETTINGS = tuple(ENV_PREFIX + name.upper() for name in Settings.model_fields)
# commas, '=' and spaces: the list and pair settings' separators pass through untouched
VALUE = "a=b, c=d,e"
SLOT = re.compile(r"ExtraEnvironment(\d+)Name")
NO_VALUE = object()
# values for the parameters without a default
REQUIRED = {"ClusterName": "prod", "Image": "scaler:1", "Subnets": "", "SecurityGroups": ""}


# -- CloudFormation ---------------------------------------------------------------------------


class _LongFormLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that reads ``!Tag value`` as CloudFormation's long form ``{"Fn::Tag": value}``."""


def _long_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_LongFormLoader.add_multi_constructor("!", _long_form)


@cache
def template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_LongFormLoader)
    return document


def _container() -> dict[str, Any]:
    (task,) = (
        r["Properties"]
        for r in template()["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
    )
    (container,) = task["ContainerDefinitions"]
    assert isinstance(container, dict)
    return container


class Stack:
    """The template evaluated for some parameter values, as CloudFormation would."""

    def __init__(self, given: Mapping[str, str]) -> None:
        parameters = template()["Parameters"]
        unknown = set(given) - set(parameters)
        assert not unknown, f"no such parameters: {unknown}"
        self.values: dict[str, Any] = {
            name: given.get(name, p.get("Default", REQUIRED.get(name)))
            for name, p in parameters.items()
        }
        self.conditions = {
            name: bool(self.evaluate(body))
            for name, body in template().get("Conditions", {}).items()
        }

    def problems(self) -> list[str]:
        """What CloudFormation would refuse: parameter constraints, then the template's rules."""
        found = []
        for name, p in template()["Parameters"].items():
            value = str(self.values[name])
            if "AllowedPattern" in p and not re.fullmatch(p["AllowedPattern"], value):
                found.append(f"{name}: {p.get('ConstraintDescription', p['AllowedPattern'])}")
            if "AllowedValues" in p and value not in map(str, p["AllowedValues"]):
                found.append(f"{name}: not one of {p['AllowedValues']}")
        for rule in template().get("Rules", {}).values():
            if "RuleCondition" in rule and not self.evaluate(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.evaluate(assertion["Assert"]):
                    found.append(assertion["AssertDescription"])
        return found

    def evaluate(self, node: Any) -> Any:
        """``node`` with its intrinsic functions applied (those it does not know stay marked)."""
        if isinstance(node, list):
            return [v for v in map(self.evaluate, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._function(key, arg)
        evaluated = {k: self.evaluate(v) for k, v in node.items()}
        return {k: v for k, v in evaluated.items() if v is not NO_VALUE}

    def _function(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return NO_VALUE if arg == "AWS::NoValue" else self.values.get(arg, f"<{arg}>")
        if key == "Condition":
            return self.conditions[arg]
        if key == "Fn::If":
            condition, then, otherwise = arg
            return self.evaluate(then if self.conditions[condition] else otherwise)
        if key == "Fn::Equals":
            left, right = self.evaluate(arg)
            return left == right
        if key == "Fn::Not":
            (value,) = self.evaluate(arg)
            return not value
        if key in ("Fn::And", "Fn::Or"):
            return (all if key == "Fn::And" else any)(self.evaluate(arg))
        return f"<{key}>"  # Sub, GetAtt...: not what these tests are about

    def environment(self) -> list[dict[str, Any]]:
        environment: list[dict[str, Any]] = self.evaluate(_container()["Environment"])
        return environment


def slots() -> list[int]:
    """The free-form slots' numbers (none: the free-form route is gone, and the tests fail)."""
    found = sorted(int(m.group(1)) for p in template()["Parameters"] if (m := SLOT.fullmatch(p)))
    assert found, "no ExtraEnvironment<N>Name parameters"
    return found


def cfn_named() -> dict[str, Any]:
    """The environment the template always sets: name => the (long-form) value expression."""
    named = {}
    for entry in _container()["Environment"]:
        if "Fn::If" not in entry:
            assert isinstance(entry["Name"], str), entry
            named[entry["Name"]] = entry["Value"]
    return named


def cfn_sets(slot: int, name: str, value: str) -> list[dict[str, Any]]:
    """The container environment with ``name=value`` in ``slot``, or the stack's problems."""
    stack = Stack({f"ExtraEnvironment{slot}Name": name, f"ExtraEnvironment{slot}Value": value})
    problems = stack.problems()
    assert not problems, problems
    return stack.environment()


# -- Terraform --------------------------------------------------------------------------------

_FOR_MERGE = re.compile(
    r"\$\{\[for (\w+), (\w+) in merge\(([^()]*)\) : \{name = \1, value = \2\}\]\}"
)
_MATCH_ALL = re.compile(
    r"\$\{alltrue\(\[for (\w+) in keys\(var\.extra_environment\) : "
    r'can\(regex\("((?:[^"\\]|\\.)*)", \1\)\)\]\)\}'
)
_NONE_OF = re.compile(
    r"\$\{length\(setintersection\(keys\(var\.extra_environment\), (\[[^\]]*\])\)\) == 0\}"
)


def tf_named() -> dict[str, str]:
    named: dict[str, str] = locals_()["named_environment"]
    return named


def tf_environment(extra: Mapping[str, str]) -> list[dict[str, str]]:
    """The container's environment for ``var.extra_environment = extra``."""
    expression = locals_()["container"]["environment"]
    shape = _FOR_MERGE.fullmatch(expression)
    assert shape, f"environment is not [for k, v in merge(...) : {{name, value}}]: {expression}"
    merged: dict[str, str] = {}
    for argument in shape.group(3).split(", "):
        kind, name = argument.split(".")
        if kind == "var":
            assert name == "extra_environment", argument
            merged.update(extra)
        else:
            assert kind == "local", argument
            merged.update(locals_()[name])
    return [{"name": k, "value": v} for k, v in merged.items()]


def tf_problems(extra: Mapping[str, str]) -> list[str]:
    """The error messages of the validations of ``extra_environment`` that ``extra`` fails."""
    found = []
    for validation in variables()["extra_environment"]["validation"]:
        condition = validation["condition"]
        if match := _MATCH_ALL.fullmatch(condition):
            pattern = json.loads(f'"{match.group(2)}"')
            ok = all(re.search(pattern, key) for key in extra)
        elif match := _NONE_OF.fullmatch(condition):
            ok = not set(extra) & set(json.loads(match.group(1)))
        else:
            pytest.fail(f"a validation of extra_environment this test cannot evaluate: {condition}")
        if not ok:
            found.append(validation["error_message"])
    return found


# -- the tests --------------------------------------------------------------------------------


def test_the_settings_are_many() -> None:
    assert len(SETTINGS) > 20 and "SCALER_CLUSTER" in SETTINGS


def test_the_named_ones_are_real_settings() -> None:
    for named in (cfn_named(), tf_named()):
        ours = {name for name in named if not name.startswith("AWS_")}
        assert ours - set(SETTINGS) == set(), "named environment that is no setting"
    assert set(cfn_named()) == set(tf_named())


def _feeds(setting: str, source: str) -> bool:
    """Whether a parameter or variable called ``source`` is named after ``setting``."""
    words = re.sub(r"(?<!^)(?=[A-Z])", "_", source).upper()  # SpotPools, spot_pools: SPOT_POOLS
    setting = setting.removeprefix(ENV_PREFIX)
    return words == setting or words.startswith(setting + "_")  # ClusterName: CLUSTER


def test_the_named_ones_take_their_own_parameter_or_variable() -> None:
    # each of them named after its setting: no two swapped
    for name, value in cfn_named().items():
        if isinstance(value, dict) and value.get("Ref") in template()["Parameters"]:
            assert _feeds(name, value["Ref"]), (name, value)
    for name, expression in tf_named().items():
        for variable in re.findall(r"\bvar\.(\w+)", expression):
            assert _feeds(name, variable), (name, expression)


def test_there_are_free_form_slots() -> None:
    numbers = slots()
    assert len(numbers) >= 8 and numbers == list(range(1, len(numbers) + 1))
    parameters = template()["Parameters"]
    for n in numbers:
        assert parameters[f"ExtraEnvironment{n}Value"]["Type"] == "String"


@pytest.mark.parametrize("setting", SETTINGS)
def test_cloudformation_can_set(setting: str) -> None:
    if setting in cfn_named():
        for n in slots():  # named: the free-form slots must not set it a second time
            stack = Stack({f"ExtraEnvironment{n}Name": setting})
            assert stack.problems(), f"slot {n} takes the named {setting}"
        return
    for n in slots():
        environment = cfn_sets(n, setting, VALUE)
        assert [e for e in environment if e["Name"] == setting] == [
            {"Name": setting, "Value": VALUE}
        ], f"slot {n}"


@pytest.mark.parametrize("setting", SETTINGS)
def test_terraform_can_set(setting: str) -> None:
    if setting in tf_named():
        assert tf_problems({setting: VALUE}), f"extra_environment takes the named {setting}"
        return
    assert tf_problems({setting: VALUE}) == []
    environment = tf_environment({setting: VALUE})
    assert [e for e in environment if e["name"] == setting] == [{"name": setting, "value": VALUE}]


def test_every_slot_at_once() -> None:
    free = [s for s in SETTINGS if s not in cfn_named()]
    chosen = dict(zip(slots(), free, strict=False))
    given = {f"ExtraEnvironment{n}Name": s for n, s in chosen.items()}
    given |= {f"ExtraEnvironment{n}Value": f"{VALUE}{n}" for n in chosen}
    stack = Stack(given)
    assert stack.problems() == []
    environment = {e["Name"]: e["Value"] for e in stack.environment()}
    assert {s: environment.get(s) for s in chosen.values()} == {
        s: f"{VALUE}{n}" for n, s in chosen.items()
    }


def test_unused_slots_set_nothing() -> None:
    environment = Stack({}).environment()
    assert {e["Name"] for e in environment} == set(cfn_named())
    assert {e["name"] for e in tf_environment({})} == set(tf_named())


@pytest.mark.parametrize(
    "name", ["AWS_REGION", "PATH", "scaler_log_level", "SCALER_", "SCALER_A-B", " SCALER_ROLL"]
)
def test_only_scaler_names_are_taken(name: str) -> None:
    for n in slots():
        assert Stack({f"ExtraEnvironment{n}Name": name}).problems(), (n, name)
    assert tf_problems({name: "x"}), name


def test_a_value_without_a_name_is_refused() -> None:
    for n in slots():
        assert Stack({f"ExtraEnvironment{n}Value": "x"}).problems(), n
