# Set-up from nothing: a virtualenv in .venv, in two steps, each done once (a stamp file marks it).
#   runtime:    torch, open_clip and idx with its dependencies: what `idx` and `make demo` run.
#   test stack: the dev extras (pytest, Playwright, mypy, ruff...) and what some tests run against
#               (a Ray cluster, moto's S3 server, ImageNet-C's reference code): `make test` only.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
TEST_STACK := $(VENV)/.test-stack-installed
# `make test PYTEST_ARGS="tests/test_report.py -k banner"` runs a subset
PYTEST_ARGS ?=

.PHONY: demo test bench lint clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e .
	touch $(RUNTIME)

$(TEST_STACK): $(RUNTIME)
	$(PY) -m pip install -q -e '.[dev]'
	# The Ray and S3 tests' servers, pinned: left to the resolver, moto's boto3 and s3fs's
	# aiobotocore make pip backtrack through hundreds of boto3 releases.
	$(PY) -m pip install -q 'ray[data]==2.60.0' 's3fs==2026.9.0' 'moto[server]==5.2.5' 'boto3==1.43.117'
	# ImageNet-C's reference implementation, for the tests that compare idx's corruptions with it.
	$(PY) -m pip install -q 'imagecorruptions==1.1.2' 'opencv-python==5.0.0.93' 'scikit-image==0.26.0'
	touch $(TEST_STACK)

demo: $(RUNTIME)
	$(VENV)/bin/idx demo
	@echo 'idx is in $(VENV)/bin: run  . $(VENV)/bin/activate  to use the try: lines and the README examples'

test: $(RUNTIME) $(TEST_STACK)
	$(VENV)/bin/mypy  # the files and settings: [tool.mypy] in pyproject.toml
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(TEST_STACK)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench: $(TEST_STACK)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) idx-demo .pytest_cache
