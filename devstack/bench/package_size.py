"""Each function's deployment package and the shared layer, unzipped, against Lambda's 250 MB limit.

Lambda counts a function's code and all its layers, unzipped, toward 250 MB (262,144,000 bytes). The sizes are
those of `sam build`'s output (.aws-sam/build), which holds what `sam deploy` zips: `make build` makes it.
"""

from __future__ import annotations

from pathlib import Path

from devstack import template

LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000
BUILD_DIR = template.ROOT / ".aws-sam" / "build"
MB = 1024 * 1024


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file() and not path.is_symlink())


def measure(build_dir: Path = BUILD_DIR) -> dict[str, tuple[int, int]]:
    """Per function: (its own code, its code plus its layers), in bytes."""
    layers = {name: _size(build_dir / name) for name in template.resources_of_type("AWS::Serverless::LayerVersion")}
    sizes = {}
    for logical_id, resource in sorted(template.resources_of_type("AWS::Serverless::Function").items()):
        own = _size(build_dir / logical_id)
        used = resource["Properties"].get("Layers", template.load_template()["Globals"]["Function"].get("Layers", []))
        sizes[logical_id] = (own, own + sum(layers[layer["Ref"]] for layer in used))
    sizes.update({name: (size, size) for name, size in layers.items()})
    return sizes


def report(sizes: dict[str, tuple[int, int]]) -> str:
    lines = [
        "| package | unzipped MB | with the layer, MB | share of the 250 MB limit |",
        "|---|---:|---:|---:|",
    ]
    for name, (own, total) in sizes.items():
        lines.append(f"| {name} | {own / MB:.2f} | {total / MB:.2f} | {total / LAMBDA_UNZIPPED_LIMIT_BYTES:.1%} |")
    return "\n".join(lines)
