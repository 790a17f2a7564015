"""`sam build` without Docker builds every function and the shared layer, as `make build` runs it: SAM builds with
the template's runtime, python3.12, which must be on the machine; SAM CLI comes from `.sam-venv` (`make validate`
and `make build` install it; `make test` does too where python3.12 exists)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

from devstack import template
from devstack.bench import package_size

SAM = template.ROOT / ".sam-venv" / "bin" / "sam"
BUILD_TIMEOUT_SECONDS = 1200  # downloads the layer's wheels for the target architecture on a cold cache


def _python_312_directory() -> str | None:
    """Where python3.12 is, looked for as the Makefile's `make build` looks (PATH, then pyenv's versions)."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates = [shutil.which("python3.12"), *pyenv]
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import os, sys; print(os.path.dirname(sys.executable))"], capture_output=True, text=True
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


PY312_DIR = _python_312_directory()

pytestmark = [
    pytest.mark.skipif(
        PY312_DIR is None, reason="SKIPPED: sam build needs python3.12 (the template's runtime) on this machine"
    ),
    pytest.mark.skipif(
        not SAM.exists(), reason="SKIPPED: SAM CLI is not installed in .sam-venv: run `make build` (or `make test`)"
    ),
]


def test_given_python_3_12_when_sam_builds_without_docker_then_every_function_and_the_layer_fit_lambda(tmp_path):
    build_dir = tmp_path / "build"
    environment = {**os.environ, "PATH": f"{PY312_DIR}{os.pathsep}{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}

    done = subprocess.run(
        [str(SAM), "build", "--build-dir", str(build_dir), "--cache-dir", str(tmp_path / "cache")],
        cwd=template.ROOT, env=environment, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS,
    )

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    sizes = package_size.measure(build_dir)
    assert set(sizes) == set(template.functions()) | set(template.resources_of_type("AWS::Serverless::LayerVersion"))
    for name, (own, total) in sizes.items():
        assert own > 0, f"{name} built empty"
        assert total < package_size.LAMBDA_UNZIPPED_LIMIT_BYTES, f"{name}: {total} bytes unzipped with its layers"
    layer = build_dir / "SharedLayer" / "python"
    assert (layer / "bloxserver" / "api.py").exists() and (layer / "fastapi").is_dir()
    # Built for the template's architecture, not this machine's.
    (architecture,) = template.load_template()["Globals"]["Function"]["Architectures"]
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[architecture]
    assert [path.name for path in (layer / "pydantic_core").glob("*.so")] == [
        f"_pydantic_core.cpython-312-{machine}-linux-gnu.so"
    ]
