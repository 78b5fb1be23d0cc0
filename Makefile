# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CDK := infra/node_modules/.bin/cdk

TEST_WORKERS ?= 3

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

# Debian's chromium for the monitor's browser test; where it cannot be installed (not Debian, not root)
# that test is skipped and says why.
BROWSER := /usr/bin/chromium
$(BROWSER):
	-@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "no chromium (install it to run the monitor's browser test)"; fi

# Debian's redis-server: the scratch inventory of hosted pipelines (obsflow falls back to fakeredis's server).
REDIS := /usr/bin/redis-server
$(REDIS):
	-@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else echo "no redis-server (hosted pipelines use fakeredis's server instead)"; fi

demo: $(STAMP)
	$(VENV)/bin/obsflow demo

# In parallel (pytest-xdist), a test file per worker: each file brings up its own local stack on free ports,
# once. Three workers on two cores: the end-to-end tests spend much of their time waiting on the stack.
test: $(STAMP) $(CDK) $(BROWSER) $(REDIS)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(VENV)/bin/python bench/calibration.py
	$(VENV)/bin/python bench/dkist_day.py
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/local_ingest.py
	$(VENV)/bin/python bench/orchestration.py
	$(VENV)/bin/python bench/pipelines.py
	$(VENV)/bin/python bench/provenance.py
	$(VENV)/bin/python bench/recipe_scale.py
	$(VENV)/bin/python bench/reprocessing.py
	$(VENV)/bin/python bench/startup.py

# The CloudFormation template of a stage, offline (no Docker, no AWS credentials): make synth STAGE=prod
STAGE ?= dev
synth: $(STAMP) $(CDK)
	$(CDK) synth -c stage=$(STAGE) --quiet
	@echo "template: cdk.out/obsflow-$(STAGE).template.json"

clean:
	rm -rf $(VENV) build *.egg-info cdk.out infra/node_modules
