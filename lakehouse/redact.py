"""Keep credentials out of everything Tidemark prints, logs or writes (events, errors, config dumps).

`load_settings` remembers every secret value it loads (catalog passwords and keys, Kafka SASL/SSL
passwords, a password inside a URI); `redact` replaces those values, and any `user:password@` in a
URI, with `***`. Redacting by value catches a secret wherever a library happens to repeat it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# A config key whose value is a credential: matched as a substring of the lowercased key.
SECRET_KEY_WORDS = ("password", "secret", "token", "credential", "access-key", "access_key")
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<pw>[^@\s'\"]+)(?P<at>@)")
MIN_SECRET_LEN = 6
_known: set[str] = set()


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_KEY_WORDS)


def secrets_in(config: Mapping[str, Any]) -> list[str]:
    """The secret values of a flat config mapping: values of secret keys, and passwords inside URIs."""
    out = []
    for key, value in config.items():
        text = str(value) if value is not None else ""
        if not text:
            continue
        if is_secret_key(str(key)):
            out.append(text)
        out += [m.group("pw") for m in _URI_PASSWORD.finditer(text)]
    return out


def remember(values: Iterable[str]) -> None:
    """Add secret values to the process-wide set that `redact` masks. Values shorter than
    MIN_SECRET_LEN are skipped: masking every `test` or `1234` in a message would mangle paths and
    numbers (URI passwords and secret config keys are masked by position whatever their length)."""
    _known.update(v for v in values if len(v) >= MIN_SECRET_LEN)


def redact(text: str) -> str:
    """`text` with every known secret and every URI password replaced by `***`."""
    text = _URI_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}{m.group('at')}", text)
    for secret in sorted(_known, key=len, reverse=True):  # longest first: one secret may contain another
        text = text.replace(secret, MASK)
    return text


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a flat config mapping fit to print: secret keys masked, URI passwords masked."""
    return {k: (MASK if is_secret_key(str(k)) and v else redact(str(v)) if isinstance(v, str) else v) for k, v in config.items()}


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
        return True
