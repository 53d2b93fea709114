"""s3:// sources, against a real S3 API (moto's server on loopback), read with the catalog's s3.* credentials.

The warehouse stays local here: pyarrow 26's S3 writer fails CompleteMultipartUpload against moto
5.2.5 ("error embedded in a 200 OK response"), which is a warehouse matter, not a source one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.exceptions import SourceError
from ingest.land import land, land_all
from lakehouse.catalog import load_catalog
from lineage.transport import InMemoryTransport


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(server).exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]'); the s3:// source test needs it")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.skip(f"moto_server did not start on port {port}: {log.read_text()[-500:]}")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_s3_sources_and_globs_land_with_the_catalog_credentials(s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    from lakehouse.config import load_settings

    creds = {"s3.endpoint": s3_endpoint, "s3.access-key-id": "test", "s3.secret-access-key": "test", "s3.region": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    client.create_bucket(Bucket="lake")
    client.put_object(Bucket="lake", Key="drop/a.csv", Body=b"id,v\n1,x\n2,y\n")
    client.put_object(Bucket="lake", Key="drop/b.csv", Body=b"id,v\n3,z\n")
    settings = load_settings(overrides={"catalog": creds})

    results = land_all(settings, "s3://lake/drop/*.csv", "raw.s3", transport=InMemoryTransport())
    assert [r.source for r in results] == ["s3://lake/drop/a.csv", "s3://lake/drop/b.csv"]
    t = load_catalog(settings).load_table("raw.s3")
    assert sorted(t.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3]
    again = land(settings, "s3://lake/drop/a.csv", "raw.s3", transport=InMemoryTransport())
    assert again.skipped

    with pytest.raises(SourceError, match=r"s3://lake/drop/nope.csv: no such file"):
        land(settings, "s3://lake/drop/nope.csv", "raw.s3", transport=InMemoryTransport())
