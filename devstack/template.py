"""Reading template.yaml: the one description of the deployment, used by the local stack and the tests."""

from __future__ import annotations

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
