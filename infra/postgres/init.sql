-- Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
-- Two databases so the Iceberg catalog and Airflow's metadata never share tables or migrations.
-- Both belong to POSTGRES_USER; its password comes from .env, never from this file.
CREATE DATABASE iceberg;
CREATE DATABASE airflow;
