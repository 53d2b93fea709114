"""Which registry changes carried by events were made by an authorised `models promote` / `archive`.

Anyone who can write to the lineage topic can send an event with a `tidemark_modelAlias` or a
`tidemark_modelVersion` facet. The consumer re-checks such a move (the version exists, the
promotion gate passes: see `lineage.model_store`), but a move `models promote --force` made on
purpose fails the gate by definition, and a registration's metrics and artifact are claims the
gate cannot re-derive. So an authorised producer signs each move and each registration it
records: an HMAC-SHA256, with a key only Tidemark's own producers and the consumer hold, over every
field that decides what the registry becomes. A move claiming `forced` without that signature is
refused; a signed move is applied as it stands (its producer applied the gate, or recorded why it
was overridden); an unsigned registration is stored as unverified, and no unsigned move can give
it an alias.

The key: `lineage.registry_key` (config or TIDEMARK__LINEAGE__REGISTRY_KEY), else the file
`registry.key` under TIDEMARK_HOME, made (mode 0600) on first use. It never appears in an event, a
table or an error (redacted like every configured secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from lineage.exceptions import RegistryKeyError

KEY_FILE = "registry.key"
SCHEME = "hmac-sha256"


def key_path(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def _key(settings: Settings, create: bool) -> bytes | None:
    if settings.lineage.registry_key:
        return settings.lineage.registry_key.encode()
    path = key_path(settings)
    try:
        return path.read_text().strip().encode()
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise RegistryKeyError(f"cannot read the registry key {path}: {exc.strerror}; fix its permissions or set lineage.registry_key") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes making the key at once must not end up with different keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def _message(fields: Mapping[str, Any]) -> bytes:
    # Canonical JSON: the same fields give the same bytes in the producer and in the consumer (which
    # sees them after a JSON round trip: floats and strings come back exactly).
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(settings: Settings, fields: Mapping[str, Any]) -> str:
    """The signature of these fields (JSON values), as `hmac-sha256:<hex>`."""
    key = _key(settings, create=True)
    assert key is not None
    return f"{SCHEME}:{hmac.new(key, _message(fields), hashlib.sha256).hexdigest()}"


def facet_fields(facet: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a Tidemark facet that its signature covers: all of its own (not `_producer`,
    `_schemaURL`, nor the signature)."""
    return {k: v for k, v in facet.items() if not k.startswith("_") and k != "signature"}


def sign_facet(settings: Settings, facet: Mapping[str, Any]) -> dict[str, Any]:
    """`facet` with its `signature` (over `facet_fields`): what Tidemark's own producers send."""
    return {**facet, "signature": sign(settings, facet_fields(facet))}


def facet_verifies(settings: Settings | None, facet: Mapping[str, Any]) -> bool:
    """Does `facet` carry a valid signature of this installation (never without settings)?"""
    return settings is not None and verify(settings, facet_fields(facet), facet.get("signature"))


def verify(settings: Settings, fields: Mapping[str, Any], signature: object) -> bool:
    """Were these fields signed with this installation's key? False for no, a bad or a foreign signature."""
    if not isinstance(signature, str) or not signature.startswith(f"{SCHEME}:"):
        return False
    key = _key(settings, create=False)
    if key is None:
        return False
    expected = hmac.new(key, _message(fields), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.split(":", 1)[1])
