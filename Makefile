# The two commands a newcomer needs: `make dev` runs the whole system, `make test` passes its tests.
# The template's runtime is python3.12: use one when the machine has it (pyenv's included), else python3.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
# SAM CLI, in a venv of its own (its pins differ from the runtime's); `sam build` needs python3.12 (pyenv's included).
SAM := .sam-venv/bin/sam
PY312_DIR := $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null && break; done)
STAMP := $(VENV)/.installed

.PHONY: dev dev-reset test bench lint validate build clean openapi types fuzz

# The AssemblyScript example of docs/wasm.md is built by the tests with its pinned toolchain, installed here from
# npm when Node 20 or newer (what assemblyscript 0.28 needs) is on the machine; the test says why it skips otherwise.
AS_EXAMPLE := docs/examples/wasm/assemblyscript
NODE_20 := $(shell node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null && echo yes)
# The TypeScript types of the API (`make types`) need Node 18 or newer; `make test` checks them when it is there.
TS_CLIENT := clients/typescript
NODE_18 := $(shell node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' 2>/dev/null && echo yes)
TOOLCHAINS := $(if $(NODE_20),$(AS_EXAMPLE)/node_modules/.installed) $(if $(NODE_18),$(TS_CLIENT)/node_modules/.installed)

$(STAMP): pyproject.toml layers/shared/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Keeps its data (users, flows, triggers, executions, logs, uploads) in .devdata/ (DEV_DATA_DIR overrides) across
# restarts; dev-reset forgets it and starts empty (docs/local-data.md).
dev: $(STAMP)
	$(VENV)/bin/python -m devstack

dev-reset: $(STAMP)
	$(VENV)/bin/python -m devstack --reset

# -rs: every skipped test says why (no Node.js 18+ for the TypeScript types, no Chromium, no python3.12).
test: $(STAMP) $(TOOLCHAINS) $(if $(PY312_DIR),$(SAM))
	$(if $(NODE_18),,@echo "No Node.js 18 or newer: the TypeScript types check (clients/typescript) is skipped")
	$(VENV)/bin/python -m pytest -n 2 -rs

$(AS_EXAMPLE)/node_modules/.installed: $(AS_EXAMPLE)/package-lock.json
	cd $(AS_EXAMPLE) && npm ci --no-audit --no-fund
	touch $@

# openapi.json: one OpenAPI 3.1 document for every route of template.yaml, from the functions' apps (commit it).
openapi: $(STAMP)
	$(VENV)/bin/python -m devstack.openapi

# clients/typescript/api.d.ts from openapi.json (openapi-typescript), then `tsc --strict` of check.ts against it.
types: $(TS_CLIENT)/node_modules/.installed
	cd $(TS_CLIENT) && npm run -s generate && npm run -s check

$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund
	touch $@

# schemathesis against a local stack from openapi.json, a large budget (`make test` runs a bounded one).
fuzz: $(STAMP)
	$(VENV)/bin/python -m devstack.fuzz --max-examples $(or $(FUZZ_EXAMPLES),50)

bench: $(STAMP)
	$(VENV)/bin/python -m devstack.bench

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

$(SAM):
	$(PYTHON) -m venv .sam-venv && .sam-venv/bin/pip install --quiet aws-sam-cli==1.170.0

# `sam validate --lint`
validate: $(SAM)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint

# `sam build` without Docker: SAM builds with the template's runtime, python3.12. .aws-sam/build is what
# `sam deploy` zips; `make bench` reports its sizes.
build: $(SAM)
	@test -n "$(PY312_DIR)" || { echo "sam build needs python3.12 (the template's runtime) on this machine"; exit 1; }
	PATH="$(PY312_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM) build

clean:
	rm -rf $(VENV) .sam-venv .aws-sam $(AS_EXAMPLE)/node_modules $(AS_EXAMPLE)/build $(TS_CLIENT)/node_modules
