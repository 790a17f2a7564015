"""Every YAML example in docs/organism.md validates, and the runnable ones produce the output they claim."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bloxserver.engine import DEFAULT_ORGANISM_YAML, REFERENCE_FLOW_YAML, EngineSettings, run_flow, validate

DOC = Path(__file__).resolve().parents[3] / "docs" / "organism.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)
DIRECTIVE = re.compile(r"^# (input|output|status|error|expect-issue): (.*)$", re.M)


def directives(block: str) -> dict[str, str]:
    return dict(DIRECTIVE.findall(block))


def without_directives(block: str) -> str:
    return DIRECTIVE.sub("", block).lstrip("\n")


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example-{index}" for index in range(len(BLOCKS))])
def test_each_example_validates_or_is_refused_as_documented(block):
    errors = {issue.code for issue in validate(block) if issue.severity == "error"}
    expected_issue = directives(block).get("expect-issue")
    assert errors == ({expected_issue} if expected_issue else set())


RUNNABLE = [block for block in BLOCKS if "input" in directives(block)]


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"runnable-{index}" for index in range(len(RUNNABLE))])
def test_each_runnable_example_produces_its_documented_result(block):
    expected = directives(block)
    result = run_flow(
        block, expected["input"], execution_id="doc", deadline=time.monotonic() + 10, settings=EngineSettings()
    )
    assert result.status == expected.get("status", "success"), result.error
    if "output" in expected:
        assert json.loads(result.output) == json.loads(expected["output"])
    if "error" in expected:
        assert result.error == expected["error"]


def test_the_shipped_constants_are_the_documented_examples():
    bodies = [without_directives(block) for block in BLOCKS]
    assert DEFAULT_ORGANISM_YAML in bodies
    assert REFERENCE_FLOW_YAML in bodies
