# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CDK := infra/node_modules/.bin/cdk

.PHONY: demo test bench synth clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==26.3
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(STAMP)

# The AWS CDK CLI, pinned in infra/package-lock.json to match aws-cdk-lib.
$(CDK): infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund --loglevel=error
	touch $(CDK)

demo: $(STAMP)
	$(VENV)/bin/obsflow demo

test: $(STAMP) $(CDK)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/local_ingest.py
	$(VENV)/bin/python bench/orchestration.py
	$(VENV)/bin/python bench/provenance.py
	$(VENV)/bin/python bench/reprocessing.py
	$(VENV)/bin/python bench/startup.py

# The CloudFormation template of a stage, offline (no Docker, no AWS credentials): make synth STAGE=prod
STAGE ?= dev
synth: $(STAMP) $(CDK)
	$(CDK) synth -c stage=$(STAGE) --quiet
	@echo "template: cdk.out/obsflow-$(STAGE).template.json"

clean:
	rm -rf $(VENV) build *.egg-info cdk.out infra/node_modules
