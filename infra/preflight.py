"""Refuse to start the compose stack with placeholder or weak settings.

Runs first (the `preflight` service; every other service waits for it to succeed). Standard library
only: it runs in the bare Python image. Each problem is one line naming the variable and the fix;
exit 1 if there is any.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys

# Every secret .env must set. Placeholders from .env.example start with "change-me".
SECRETS = (
    "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "TIDEMARK_S3_SECRET_KEY",
    "KAFKA_ADMIN_PASSWORD", "KAFKA_PRODUCER_PASSWORD", "KAFKA_CONSUMER_PASSWORD", "KAFKA_SERVE_PASSWORD",
    "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD",
)
NAMES = ("POSTGRES_USER", "MINIO_ROOT_USER", "TIDEMARK_S3_ACCESS_KEY")
MIN_LENGTH = 16


def problems(env: dict[str, str]) -> list[str]:
    found = []
    for name in NAMES + SECRETS:
        value = env.get(name, "")
        if not value:
            found.append(f"{name} is not set: set it in .env (see .env.example)")
        elif "change-me" in value.lower():
            found.append(f"{name} still has the placeholder from .env.example: set a value of your own in .env")
        elif name in SECRETS and name != "AIRFLOW_FERNET_KEY" and len(value) < MIN_LENGTH:
            found.append(f"{name} is {len(value)} characters: use at least {MIN_LENGTH} random ones")
    fernet = env.get("AIRFLOW_FERNET_KEY", "")
    if fernet and "change-me" not in fernet.lower():
        try:
            ok = len(base64.urlsafe_b64decode(fernet.encode())) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            found.append("AIRFLOW_FERNET_KEY is not a Fernet key: make one with "
                         "python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"")
    # Tidemark's S3 user is scoped to its bucket; reusing the root keys would undo that.
    if env.get("TIDEMARK_S3_ACCESS_KEY") and env.get("TIDEMARK_S3_ACCESS_KEY") == env.get("MINIO_ROOT_USER"):
        found.append("TIDEMARK_S3_ACCESS_KEY equals MINIO_ROOT_USER: give Tidemark its own MinIO user in .env")
    kafka = [env.get(f"KAFKA_{role}_PASSWORD") for role in ("ADMIN", "PRODUCER", "CONSUMER", "SERVE")]
    if all(kafka) and len(set(kafka)) < len(kafka):
        found.append("KAFKA_ADMIN/PRODUCER/CONSUMER/SERVE_PASSWORD must differ: each role has its own rights")
    return found


def main() -> int:
    found = problems(dict(os.environ))
    for line in found:
        print(f"preflight: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
