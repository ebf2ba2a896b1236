# Two entry points: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

# The browser tests drive Debian's chromium (never a downloaded one): installed once per machine.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned and installed first, so nothing resolves the multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# OpenRLHF's own dependencies include CUDA builds (flash-attn): its pure-Python package alone
	# is enough for the integration tests (tests/support/openrlhf_stubs.py).
	$(BIN)/pip install --quiet --no-deps 'openrlhf==0.11.2'
	touch $(STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y -o DPkg::Lock::Timeout=600 chromium

install: $(STAMP) $(CHROMIUM)

demo: $(STAMP)
	$(BIN)/fadewatch demo

# Two worker processes by default: the suite waits on servers, browsers and PostgreSQL more than it
# computes, so two processes halve its time on a two-core machine. TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2
test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Benchmarks run in their own environment, which adds the peer tools they compare with.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml bench/requirements-peers.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/pip install --quiet -e '.[server,demo,trl]' -r bench/requirements-peers.txt
	touch $(BENCH_VENV)/.installed

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/ingest.py
	$(BENCH_VENV)/bin/python bench/client_overhead.py
	$(BENCH_VENV)/bin/python bench/demo.py
	$(BENCH_VENV)/bin/python bench/alerts.py
	$(BENCH_VENV)/bin/python bench/detection.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache
