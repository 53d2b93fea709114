"""s3:// sources, against a real S3 API (moto's server on loopback), read with the catalog's s3.* credentials.

The warehouse stays local here; tests/tidemark/test_remote_stack.py runs a whole scenario on an s3:// warehouse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.exceptions import SourceError
from ingest.land import land
from ingest.several import land_all
from lakehouse.catalog import load_catalog
from lineage.transport import InMemoryTransport


def test_s3_sources_and_globs_land_with_the_catalog_credentials(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    from lakehouse.config import load_settings

    s3_endpoint, lake = s3_server, s3_bucket
    creds = {"s3.endpoint": s3_endpoint, "s3.access-key-id": "test", "s3.secret-access-key": "test", "s3.region": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    client.put_object(Bucket=lake, Key="drop/a.csv", Body=b"id,v\n1,x\n2,y\n")
    client.put_object(Bucket=lake, Key="drop/b.csv", Body=b"id,v\n3,z\n")
    settings = load_settings(overrides={"catalog": creds})

    results = land_all(settings, f"s3://{lake}/drop/*.csv", "raw.s3", transport=InMemoryTransport())
    assert [r.source for r in results] == [f"s3://{lake}/drop/a.csv", f"s3://{lake}/drop/b.csv"]
    t = load_catalog(settings).load_table("raw.s3")
    assert sorted(t.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3]
    again = land(settings, f"s3://{lake}/drop/a.csv", "raw.s3", transport=InMemoryTransport())
    assert again.skipped

    with pytest.raises(SourceError, match=rf"s3://{lake}/drop/nope.csv: no such file"):
        land(settings, f"s3://{lake}/drop/nope.csv", "raw.s3", transport=InMemoryTransport())


def test_an_s3_source_is_copied_by_the_pass_that_checksums_it(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    """`open_source(copy_into=)`: one read of the object gives both its sha256 and a local copy of those bytes; a local file is not copied."""
    import hashlib

    import boto3

    from ingest import sources

    creds = {"s3.endpoint": s3_server, "s3.access-key-id": "test", "s3.secret-access-key": "test", "s3.region": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    body = b"id,v\n" + b"".join(b"%d,x\n" % i for i in range(200_000))
    client.put_object(Bucket=s3_bucket, Key="drop/big.csv", Body=body)
    (tmp_path / "copies").mkdir()
    src = sources.open_source(f"s3://{s3_bucket}/drop/big.csv", None, creds, copy_into=tmp_path / "copies")
    assert src.local_copy == str(tmp_path / "copies" / "big.csv")
    assert Path(src.local_copy).read_bytes() == body and src.sha256 == hashlib.sha256(body).hexdigest()

    local = tmp_path / "local.csv"
    local.write_bytes(body)
    assert sources.open_source(str(local), copy_into=tmp_path / "copies").local_copy is None
    with pytest.raises(SourceError, match=r"s3://.*/drop/big.csv: cannot write its local copy .*/gone/big.csv: .*; free disk space there"):
        sources.open_source(f"s3://{s3_bucket}/drop/big.csv", None, creds, copy_into=tmp_path / "gone")
