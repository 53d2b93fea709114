"""The registry key and the signatures made with it (lineage/signing.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lakehouse.config import load_settings
from lineage import signing
from lineage.exceptions import RegistryKeyError

MOVE = {"model": "wine", "version": 2, "alias": "production", "forced": True, "reason": "drill", "runId": "r1"}


def test_the_key_file_is_made_once_private_and_signatures_verify_only_unchanged(isolated_env: Path) -> None:
    settings = load_settings()
    assert not signing.verify(settings, MOVE, "hmac-sha256:00")  # no key yet: nothing verifies, no key is made
    assert not signing.key_path(settings).exists()
    sig = signing.sign(settings, MOVE)
    path = signing.key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and sig.startswith("hmac-sha256:")
    assert signing.sign(settings, dict(reversed(list(MOVE.items())))) == sig  # the same key, canonical order
    assert signing.verify(settings, MOVE, sig)
    for change in ({"version": 99}, {"forced": False}, {"alias": "staging"}, {"runId": "r2"}):
        assert not signing.verify(settings, {**MOVE, **change}, sig)
    for bad in (None, "", "sha256:" + sig.split(":")[1], sig[:-1] + ("0" if sig[-1] != "0" else "1"), 42):
        assert not signing.verify(settings, MOVE, bad)


def test_a_configured_key_wins_and_another_installation_cannot_verify(isolated_env: Path, tmp_path: Path) -> None:
    configured = load_settings(overrides={"lineage": {"registry_key": "k" * 40}})
    sig = signing.sign(configured, MOVE)
    assert not signing.key_path(configured).exists()  # the configured key is used; no file is made
    assert signing.verify(load_settings(overrides={"lineage": {"registry_key": "k" * 40}}), MOVE, sig)
    other = load_settings(environ={"TIDEMARK_HOME": str(tmp_path / "other")})
    signing.sign(other, MOVE)  # makes its own key
    assert not signing.verify(other, MOVE, sig)


def test_an_unreadable_key_is_one_line_naming_the_file_and_the_setting(isolated_env: Path) -> None:
    settings = load_settings()
    signing.key_path(settings).mkdir(parents=True)  # a directory where the key file should be
    with pytest.raises(RegistryKeyError, match=r"cannot read the registry key .*registry.key: .*; fix its permissions or set lineage.registry_key"):
        signing.sign(settings, MOVE)
