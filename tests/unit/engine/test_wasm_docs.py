"""The examples of docs/wasm.md run: each module is built, validated against the ABI and run through a flow on the
documented input (with an empty project memory), giving the documented output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import wasmtime

from bloxserver.engine import FlowContext, RunServices, WasmModuleFacts, run_flow, wasm
from tests.unit.engine.engine_fakes import DictMemory

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "wasm.md"
WAT_BLOCKS = re.findall(r"^```wat\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)
DIRECTIVE = re.compile(r"^;; (interface|capabilities|input|output): (.*)$", re.M)
ASSEMBLYSCRIPT = ROOT / "docs" / "examples" / "wasm" / "assemblyscript"


class OneModule:
    def __init__(self, module: wasmtime.Module) -> None:
        self.module = module

    def load(self, module_id: str, sha256: str) -> wasmtime.Module:
        return self.module


def run_module(data: bytes, interface: str, capabilities: str, payload: str):
    shape, artifact = wasm.validate(data)
    facts = WasmModuleFacts("example", "ready", "sha", shape.interfaces, shape.host_imports)
    organism = f"""
organism: {{name: example}}
listeners:
  - name: tool
    description: the example module
    handler: wasm:example
    config: {{interface: {interface}, capabilities: {capabilities}}}
    peers: [done]
  - name: done
    description: result
    handler: output
"""
    return run_flow(
        organism,
        payload,
        execution_id="doc",
        deadline=time.monotonic() + 10,
        context=FlowContext(wasm_modules=(facts,)),
        services=RunServices(wasm_modules=OneModule(wasm.deserialize(artifact)), memory=DictMemory()),
    )


def test_the_doc_has_a_wat_example():
    assert WAT_BLOCKS


@pytest.mark.parametrize("block", WAT_BLOCKS, ids=[f"wat-{index}" for index in range(len(WAT_BLOCKS))])
def test_each_wat_example_runs_as_documented(block):
    directives = dict(DIRECTIVE.findall(block))

    result = run_module(bytes(wasmtime.wat2wasm(block)), directives["interface"], directives["capabilities"], directives["input"])

    assert result.status == "success", result.error
    assert json.loads(result.output) == json.loads(directives["output"])
    assert any(log.metadata.get("wasmModule") == "example" for log in result.logs)


def test_the_assemblyscript_example_builds_and_greets(tmp_path):
    asc = ASSEMBLYSCRIPT / "node_modules" / ".bin" / "asc"
    if not asc.exists() or shutil.which("node") is None:
        pytest.skip(
            "the AssemblyScript toolchain is not installed: it needs Node 20 or newer, and `npm ci` in "
            "docs/examples/wasm/assemblyscript (make test runs it when Node 20+ is on the machine)"
        )
    out = tmp_path / "greeter.wasm"
    build = json.loads((ASSEMBLYSCRIPT / "package.json").read_text())["scripts"]["build"]
    command = build.replace("build/greeter.wasm", str(out)).split()
    subprocess.run([str(asc), *command[1:]], cwd=ASSEMBLYSCRIPT, check=True, capture_output=True, timeout=300)

    result = run_module(out.read_bytes(), "greet", "[log]", '{"name": "Ada"}')

    assert result.status == "success", result.error
    assert json.loads(result.output) == {"greeting": "Hello, Ada!"}
    assert [log.message for log in result.logs if log.metadata.get("wasmModule") == "example"] == ["greeting Ada"]
