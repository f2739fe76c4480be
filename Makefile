# fraudstream: everything a fresh machine needs happens behind these targets.
#   make test   venv + deps + Kafka jars, then the whole test suite against a real broker
#   make demo   venv + deps + Kafka jars, then the streaming demo (finishes by itself)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install kafka browser prometheus test test-fast demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

kafka: $(STAMP)
	$(BIN)/fraudstream kafka fetch

# Headless Chromium for the dashboard screenshot test (Debian package; needs root or sudo).
browser:
	@infra/install-debian-package.sh chromium chromium

# Debian's Prometheus server and promtool for the operations test (needs root or sudo).
prometheus:
	@infra/install-debian-package.sh prometheus prometheus promtool

test: kafka browser prometheus
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

demo: kafka
	$(BIN)/fraudstream demo

bench: kafka
	$(BIN)/fraudstream bench

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
