"""Reading template.yaml: the one description of the deployment, used by the local stack and the tests."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from types import ModuleType
from functools import cache
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


@cache
def load_template() -> dict[str, Any]:
    """The template as data (CloudFormation short-form tags such as !Ref become their long form)."""
    return yaml_parse(TEMPLATE_PATH.read_text())


def resources_of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in load_template()["Resources"].items()
        if resource.get("Type") == resource_type
    }


def parameter_defaults() -> dict[str, Any]:
    """Each parameter's Default, a CommaDelimitedList as a list (as CloudFormation hands it to a Ref)."""
    defaults: dict[str, Any] = {}
    for name, parameter in load_template().get("Parameters", {}).items():
        if "Default" not in parameter:
            continue
        value = parameter["Default"]
        if parameter.get("Type") == "CommaDelimitedList":
            value = [part.strip() for part in str(value).split(",")]
        defaults[name] = value
    return defaults


def resolve(value: Any, refs: dict[str, Any]) -> Any:
    """Evaluate the intrinsic functions the template uses outside resource wiring: Ref, Fn::If with the
    template's Conditions, Fn::Not, Fn::Equals, Fn::GetAtt and Fn::Sub. `refs` gives parameters, pseudo parameters and
    resources their local values; anything else raises, so a new intrinsic is noticed rather than passed raw."""
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {key: resolve(item, refs) for key, item in value.items()}
    [(function, argument)] = value.items()
    if function == "Ref":
        if argument not in refs:
            raise KeyError(f"template.yaml refers to {argument!r}, which has no local value")
        return refs[argument]
    if function == "Fn::If":
        condition, if_true, if_false = argument
        return resolve(if_true if _condition(condition, refs) else if_false, refs)
    if function == "Fn::Not":
        return not resolve(argument[0], refs)
    if function == "Fn::Equals":
        left, right = (resolve(item, refs) for item in argument)
        return left == right
    if function == "Fn::GetAtt":
        # refs holds "Resource.Attribute" for the attributes the template reads (a function's or role's Arn).
        name = argument if isinstance(argument, str) else ".".join(argument)
        if name not in refs:
            raise KeyError(f"template.yaml reads {name!r}, which has no local value")
        return refs[name]
    if function == "Fn::Sub":
        return re.sub(r"\$\{([^}!]+)\}", lambda match: str(resolve({"Ref": match.group(1)}, refs)), argument)
    if function.startswith("Fn::") or function == "Condition":
        raise ValueError(f"template.yaml uses {function}, which the local stack does not evaluate")
    return {function: resolve(argument, refs)}


def _condition(name: str, refs: dict[str, Any]) -> bool:
    return bool(resolve(load_template()["Conditions"][name], refs))


@dataclass(frozen=True)
class FunctionSpec:
    """An AWS::Serverless::Function as the local stack runs it."""

    logical_id: str
    code_dir: Path
    module: str
    attribute: str
    timeout_seconds: float
    memory_mb: int

    def import_module(self) -> ModuleType:
        """The handler's module, imported as Lambda does. Function modules have unique names, so every CodeUri
        directory can share sys.path."""
        code_dir = str(self.code_dir)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        return importlib.import_module(self.module)


@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi event of a function: `path` is "/$default" for the catch-all route."""

    function: str
    method: str
    path: str
    authorizer: str | None  # None: public (Auth: {Authorizer: NONE}, or no authorizer at all)
    event: str = ""  # the event's logical name in the function's Events (e.g. "ListFlows")

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "/$default" else f"{self.method} {self.path}"


def _function_setting(resource: dict[str, Any], name: str) -> Any:
    return resource["Properties"].get(name, load_template().get("Globals", {}).get("Function", {}).get(name))


def functions() -> dict[str, FunctionSpec]:
    specs = {}
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        module, attribute = resource["Properties"]["Handler"].rsplit(".", 1)
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=ROOT / resource["Properties"]["CodeUri"],
            module=module,
            attribute=attribute,
            timeout_seconds=float(_function_setting(resource, "Timeout") or 3),
            memory_mb=int(_function_setting(resource, "MemorySize") or 128),
        )
    return specs


def http_api() -> dict[str, Any]:
    """The properties of the template's one AWS::Serverless::HttpApi."""
    (resource,) = resources_of_type("AWS::Serverless::HttpApi").values()
    return resource["Properties"]


def http_routes() -> list[HttpRoute]:
    """Every HttpApi event of every function, with the authorizer API Gateway applies to it."""
    default_authorizer = http_api().get("Auth", {}).get("DefaultAuthorizer")
    routes = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event["Type"] != "HttpApi":
                continue
            props = event["Properties"]
            authorizer = props.get("Auth", {}).get("Authorizer", default_authorizer)
            routes.append(
                HttpRoute(
                    function=logical_id,
                    method=props["Method"].upper(),
                    path=props["Path"],
                    authorizer=None if authorizer in (None, "NONE") else authorizer,
                    event=event_name,
                )
            )
    return routes


def function_environments(refs: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each function's environment variables (Globals merged with its own), resolved with `refs`."""
    global_variables = load_template().get("Globals", {}).get("Function", {}).get("Environment", {})
    environments = {}
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        merged = {**global_variables.get("Variables", {}), **own}
        environments[logical_id] = {name: str(resolve(value, refs)) for name, value in merged.items()}
    return environments
