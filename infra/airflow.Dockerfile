# Airflow 3.3.2 with Tidemark installed, so DAG tasks call the packages directly, and the api-server
# mounts Tidemark's plugin (pages and JSON under /tidemark; found through the `airflow.plugins` entry
# point). Built by docker-compose for the api-server, scheduler, dag-processor, triggerer, Celery workers and
# the init job.
# Configuration comes from the environment only (AIRFLOW__..., TIDEMARK__...); no secrets here.
FROM apache/airflow:3.3.2-python3.11
# Graphviz's `dot` lays out the plugin's lineage and trace graphs.
USER root
RUN apt-get update && apt-get install -y --no-install-recommends graphviz fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
USER airflow
WORKDIR /opt/tidemark
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:0 tidemark ./tidemark
COPY --chown=airflow:0 lakehouse ./lakehouse
COPY --chown=airflow:0 ingest ./ingest
COPY --chown=airflow:0 lineage ./lineage
COPY --chown=airflow:0 models ./models
COPY --chown=airflow:0 serving ./serving
# `celery`: the CeleryExecutor's provider (the compose stack runs tasks on Celery workers).
# The `airflow` extra pins apache-airflow==3.3.2, the image's own, so pip keeps it while resolving our pins.
RUN pip install --no-cache-dir -c constraints.txt ".[s3,airflow,celery]"
COPY --chown=airflow:0 dags /opt/airflow/dags
# TIDEMARK_HOME (the outbox of events not yet delivered, local state) must be writable by Airflow's user.
USER root
RUN mkdir -p /var/lib/tidemark && chown airflow:0 /var/lib/tidemark
USER airflow
WORKDIR /opt/airflow
