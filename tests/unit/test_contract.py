"""Our contract models match shared/contract/api_contract_models.py: fields, aliases, required-ness, defaults,
constraints and enum values. Drift in either file fails here."""

from __future__ import annotations

import enum
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.warnings import PydanticDeprecatedSince20

from bloxserver import contract as ours

CONTRACT_PATH = Path(__file__).resolve().parents[3] / "shared" / "contract" / "api_contract_models.py"


def _load_reference():
    spec = importlib.util.spec_from_file_location("reference_contract", CONTRACT_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    with warnings.catch_warnings():
        # The reference still uses Pydantic v1-style `class Config`; ours must not (pytest makes that an error).
        warnings.simplefilter("ignore", PydanticDeprecatedSince20)
        spec.loader.exec_module(module)
    return module


reference = _load_reference()


def _members(module, kind):
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, kind) and obj.__module__ == module.__name__
    }


REFERENCE_MODELS = _members(reference, BaseModel)
REFERENCE_ENUMS = _members(reference, enum.Enum)


def _constraints(field) -> set[str]:
    return {repr(item) for item in field.metadata}


def test_the_reference_contract_is_found_and_non_trivial():
    assert CONTRACT_PATH.exists()
    assert len(REFERENCE_MODELS) >= 25 and len(REFERENCE_ENUMS) >= 6


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_every_reference_model_exists_with_the_same_fields(name):
    theirs = REFERENCE_MODELS[name]
    mine = getattr(ours, name)
    for field_name, their_field in theirs.model_fields.items():
        assert field_name in mine.model_fields, f"{name}.{field_name} is missing"
        my_field = mine.model_fields[field_name]
        assert my_field.alias == their_field.alias, f"{name}.{field_name} alias"
        assert my_field.is_required() == their_field.is_required(), f"{name}.{field_name} required-ness"
        if not their_field.is_required():
            assert my_field.get_default(call_default_factory=True) == their_field.get_default(
                call_default_factory=True
            ), f"{name}.{field_name} default"
        assert _constraints(their_field) <= _constraints(my_field), f"{name}.{field_name} constraints"
    extra = set(mine.model_fields) - set(theirs.model_fields)
    for field_name in extra:
        assert not mine.model_fields[field_name].is_required(), f"added field {name}.{field_name} must be optional"


@pytest.mark.parametrize("name", sorted(REFERENCE_ENUMS))
def test_every_enum_has_the_same_values(name):
    assert {m.value for m in getattr(ours, name)} == {m.value for m in REFERENCE_ENUMS[name]}


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_models_accept_both_casings_and_serialise_by_alias(name):
    model = getattr(ours, name)
    assert model.model_config.get("populate_by_name") is True
    aliased = {f: info.alias for f, info in model.model_fields.items() if info.alias}
    for field_name, alias in aliased.items():
        assert alias != field_name and "_" not in alias


def test_a_flow_round_trips_through_the_wire_shape():
    wire = {
        "id": "6f1c1f2e-8f38-4c77-9d6e-0d6a4b1e2a11",
        "userId": "0b8f7a58-5b8b-4b0d-8f38-1c2d3e4f5a6b",
        "name": "n",
        "organismYaml": "listeners: []",
        "createdAt": "2026-11-28T12:00:00Z",
        "updatedAt": "2026-11-28T12:00:00Z",
    }
    flow = ours.Flow.model_validate(wire)
    dumped = flow.model_dump(mode="json", by_alias=True)
    assert dumped["userId"] == wire["userId"] and dumped["status"] == "stopped"
    assert ours.Flow.model_validate({**wire, "user_id": wire["userId"]}).user_id == flow.user_id
