# The two commands a newcomer needs: `make dev` runs the whole system, `make test` passes its tests.
# The template's runtime is python3.12: use one when the machine has it (pyenv's included), else python3.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: dev test bench lint validate clean

$(STAMP): pyproject.toml layers/shared/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/python -m devstack

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2

bench: $(STAMP)
	$(VENV)/bin/python -m devstack.bench

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

# `sam validate --lint` with SAM CLI in a venv of its own (its pins differ from the runtime's).
validate:
	test -x .sam-venv/bin/sam || { $(PYTHON) -m venv .sam-venv && .sam-venv/bin/pip install --quiet aws-sam-cli==1.170.0; }
	SAM_CLI_TELEMETRY=0 .sam-venv/bin/sam validate --lint

clean:
	rm -rf $(VENV) .sam-venv .aws-sam
