# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv from pinned versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := local-broker,s3,airflow,dev
# Two worker processes, each taking whole test files (their fixtures: a broker, an Airflow
# database): 11 minutes instead of 16 on 2 cores. `make test PYTEST_ARGS=` runs in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test bench venv lock clean down airflow sysdeps

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==25.3"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tidemark demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian packages the tests and pictures need: chromium (the browser tests drive it headless) and
# graphviz (`dot` lays out the lineage graphs of `tidemark lineage graph` and the Airflow plugin).
# Idempotent: installs only what `dpkg -s` says is missing. Elsewhere than Debian it says what to install.
SYSDEPS := chromium graphviz fonts-dejavu-core
sysdeps:
	@if ! command -v dpkg >/dev/null 2>&1; then echo "not a Debian system: install $(SYSDEPS) (or your system's equivalents) yourself"; exit 0; fi; \
	missing=$$(for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick,)

# Airflow 3 with Tidemark's DAGs and plugin (/tidemark): AIRFLOW_HOME under TIDEMARK_HOME, dags/, examples off; prints URL and login.
airflow: $(STAMP) sysdeps
	$(BIN)/tidemark up
	$(BIN)/tidemark airflow standalone

down: $(STAMP)
	$(BIN)/tidemark down

# Re-resolve and pin every dependency (run after changing pyproject.toml).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e ".[$(EXTRAS)]"
	( sed -n '1,2p' constraints.txt; .lockvenv/bin/pip freeze --exclude-editable | grep -v '^tidemark' ) > constraints.new
	mv constraints.new constraints.txt && rm -rf .lockvenv

clean:
	rm -rf $(VENV) .tidemark
