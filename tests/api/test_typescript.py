"""clients/typescript: the API's TypeScript types, generated from openapi.json, hold every contract type as the
frontend writes it (check.ts under `tsc --strict`). Needs Node 18+ and the pinned npm packages (`make test`
installs them when Node is there)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devstack.template import ROOT

CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return int(version.strip().lstrip("v").split(".")[0])


pytestmark = [
    pytest.mark.skipif(
        (_node_major() or 0) < 18,
        reason="SKIPPED: the TypeScript types check needs Node.js 18 or newer on PATH (CI has it)",
    ),
    pytest.mark.skipif(
        not (BIN / "tsc").exists(),
        reason="SKIPPED: clients/typescript has no node_modules: run `make types` (or `make test`) to install them",
    ),
]


def _run(*command: str, cwd=CLIENT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_given_openapi_json_when_types_are_generated_then_they_are_the_committed_api_d_ts(tmp_path):
    generated = tmp_path / "api.d.ts"
    done = _run(str(BIN / "openapi-typescript"), str(ROOT / "openapi.json"), "--default-non-nullable", "false",
                "--output", str(generated))
    assert done.returncode == 0, done.stderr
    committed = (CLIENT / "api.d.ts").read_text()
    assert generated.read_text() == committed, "api.d.ts is behind openapi.json: run `make types`"


def test_every_contract_type_written_as_the_frontend_does_type_checks_strictly():
    done = _run("npm", "run", "-s", "check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_field_the_contract_does_not_have_fails_the_check(tmp_path):
    for name in ("api.d.ts", "check.ts"):
        shutil.copy(CLIENT / name, tmp_path / name)
    check = tmp_path / "check.ts"
    check.write_text(check.read_text().replace("clerkId:", "clerk_id:"))
    done = _run(str(BIN / "tsc"), "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext",
                "--moduleResolution", "nodenext", "--allowImportingTsExtensions", "check.ts", cwd=tmp_path)
    assert done.returncode != 0 and "clerk_id" in done.stdout
