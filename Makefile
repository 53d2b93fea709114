# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv from pinned versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := local-broker,s3,airflow,celery,spark,dev
# Debian packages the project needs beside .venv, installed by `make sysdeps` (apt, as root or via sudo;
# only those `dpkg -s` does not already call installed). Spark: Java 17, jarjar (relocates Jackson
# for the Iceberg runtime), the JDBC drivers of the SQLite and PostgreSQL catalogs. Pictures and
# browser tests: graphviz (`dot` lays out `tidemark lineage graph` and the Airflow plugin's graphs, with
# DejaVu fonts), chromium (the browser tests drive it headless).
SYSDEPS := openjdk-17-jre-headless libjarjar-java libxerial-sqlite-jdbc-java libpostgresql-jdbc-java \
	graphviz fonts-dejavu-core chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# pyspark's Jackson relocated for Spark's Iceberg runtime (see infra/spark/relocate_jackson.py).
SPARK_JAR := $(VENV)/share/tidemark/spark/iceberg-shaded-jackson-2.15.2.jar
# Two worker processes, each taking whole test files (their fixtures: a broker, an Airflow
# database): 11 minutes instead of 16 on 2 cores. `make test PYTEST_ARGS=` runs in one process.
# Files in collection order, not xdist's most-tests-first: tests/conftest.py puts the longest first.
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: demo test bench venv lock clean down airflow airflow-demo sysdeps spark serve

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==25.3"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

sysdeps:
	@missing="$$(for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -q -o DPkg::Lock::Timeout=600 && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
			-o DPkg::Lock::Timeout=600 $$missing; \
	fi

# Spark with Iceberg, offline: `.[spark]` (in EXTRAS), the Debian packages, and the relocated Jackson jar.
spark: sysdeps $(SPARK_JAR)

# Order-only on the venv: built when missing (a new .venv has none), never rebuilt on every install.
$(SPARK_JAR): | $(STAMP) sysdeps
	$(BIN)/python infra/spark/relocate_jackson.py $@

demo: $(STAMP)
	$(BIN)/tidemark demo

test: $(STAMP) spark sysdeps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Serve a model over HTTP on the embedded default (after `make demo`: wine@production), following its
# alias by the local broker's events; SERVE=NAME@ALIAS and PORT=N choose another. Ctrl-C stops it.
SERVE ?= wine@production
PORT ?= 8000
serve: $(STAMP)
	$(BIN)/tidemark up
	$(BIN)/tidemark serve $(SERVE) --port $(PORT)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick,)

# Airflow 3 with Tidemark's DAGs and plugin (/tidemark): AIRFLOW_HOME under TIDEMARK_HOME, dags/, examples off; prints URL and login.
# Its parts (scheduler, API server, DAG processor, triggerer) and the lineage consumer run supervised by
# tidemark/airflow_stack.py (restarted when they exit; Ctrl-C stops all within ~10 s).
# EXECUTOR=celery: scheduler, API server, DAG processor, triggerer and two Celery workers, supervised by
# tidemark/airflow_stack.py (Redis at AIRFLOW__CELERY__BROKER_URL, default 127.0.0.1:6379; metadata in
# AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, a PostgreSQL database: SQLite cannot serve Celery workers).
EXECUTOR ?= local
airflow: $(STAMP) sysdeps
	$(BIN)/tidemark up
ifeq ($(EXECUTOR),celery)
	$(BIN)/python -m tidemark.airflow_stack --executor celery
else
	$(BIN)/python -m tidemark.airflow_stack --executor local
endif

# The continuous loop in Airflow, end to end: Airflow (LocalExecutor) and the lineage consumer, two
# landings, then train -> promote -> drift -> renew by the scheduler alone; ends with the trace.
airflow-demo: $(STAMP)
	$(BIN)/tidemark demo --airflow

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
