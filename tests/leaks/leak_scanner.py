"""One scanner for every leak test: looks for plaintexts and keys (raw, hex, base64) anywhere a
user or an error tracker could read them.

An exception is read the way error trackers read it: its message, ``repr``, ``args``, notes,
SQLAlchemy's ``params``/``statement``/``orig``, its whole ``__cause__``/``__context__`` chain and
the formatted traceback; ``locals_too`` adds the local variables of every frame (Sentry's default
captures them) for key material.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Iterable
from typing import Any

import fieldcrypt
from fieldcrypt.keys import trust
from fieldcrypt.keys.record import DataKeyRecord, Purpose

# The in-process moto server is the KMS service, not the application: its own logs are AWS's side.
SERVER_LOGGERS = ("moto", "werkzeug", "flask")


class Capture(logging.Handler):
    """Keeps every record any logger emits, formatted the way a handler would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(SERVER_LOGGERS):
            self.format(record)  # fills record.message / exc_text, as a real handler does
            self.records.append(record)


class Secrets:
    """What must never be seen: plaintext values and every key involved, in every spelling."""

    def __init__(self) -> None:
        self.needles: dict[str, str] = {}  # text to look for -> what it is
        self.raw: dict[bytes, str] = {}  # bytes to look for in binary output

    def plaintext(self, *values: str) -> Secrets:
        for value in values:
            self.needles[value] = f"plaintext {value!r}"
            self.raw[value.encode("utf-8")] = f"plaintext {value!r}"
        return self

    def key(self, raw: bytes, label: str = "key") -> Secrets:
        """A key in every form a log line or message could carry it."""
        assert len(raw) >= 16, "only keys are scanned as bytes"
        spellings = {
            raw.hex(),
            raw.hex().upper(),
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            repr(raw)[2:-1],  # how bytes look inside a str() of a dict or a message
            raw.decode("latin-1"),
        }
        for spelling in spellings:
            self.needles[spelling] = label
        self.raw[raw] = label
        return self

    def keyring(self, keyring: fieldcrypt.Keyring, master_key_bytes: bytes | None = None) -> Secrets:
        """Every data key (encryption and blind index) of ``keyring``, and its local master key."""
        for record in keyring.key_store.list(keyring.name, None):
            if any(m.can_unwrap(w) for m in keyring.master_keys for w in record.wraps):
                self.data_key(keyring, record)  # (a shared store may hold others' keys too)
        if master_key_bytes is not None:
            self.key(master_key_bytes, f"master key of {keyring.name}")
        return self

    def data_key(self, keyring: fieldcrypt.Keyring, record: DataKeyRecord) -> Secrets:
        logging.disable(logging.CRITICAL)  # unwrapping here must not add to the captured logs
        anchor = record.purpose is Purpose.ANCHOR  # its id is its place, not a key commitment
        try:
            raw = keyring._unwrap(record, committed=not anchor)
        finally:
            logging.disable(logging.NOTSET)
        if anchor:  # the anchor secret and the record-MAC key derived from it are secrets too
            self.key(trust.mac_key(raw), f"record MAC key of {record.keyring}")
        return self.key(raw, f"data key {record.key_id} ({record.purpose.value})")

    # -- scanning -----------------------------------------------------------------------------

    def found_in(self, text: str | bytes) -> list[str]:
        if isinstance(text, bytes):
            return sorted({label for needle, label in self.raw.items() if needle in text})
        return sorted({label for needle, label in self.needles.items() if needle and needle in text})

    def assert_clean(self, text: str | bytes, where: str = "output") -> None:
        found = self.found_in(text)
        assert not found, f"{where} leaks {found}"

    def assert_exception_clean(self, exc: BaseException, *, locals_too: bool = False) -> None:
        for where, text in exception_texts(exc):
            self.assert_clean(text, f"{type(exc).__name__} {where}")
        if locals_too:
            for where, value in frame_locals(exc):
                found = [label for label in self.found_in(_text(value)) if not label.startswith("plaintext")]
                found += [label for raw, label in self.raw.items() if value == raw and "key" in label]
                assert not found, f"{where} holds {found}"

    def assert_records_clean(self, records: Iterable[logging.LogRecord]) -> int:
        """Every record's message (and formatted exception); returns how many were scanned."""
        count = 0
        formatter = logging.Formatter()
        for record in records:
            text = record.getMessage()
            if record.exc_info:
                text += formatter.formatException(record.exc_info)
            self.assert_clean(text, f"log record {record.name}:{record.levelname}")
            count += 1
        return count


def exception_texts(exc: BaseException) -> list[tuple[str, str]]:
    """(where, text) for everything an exception and its chain show."""
    texts: list[tuple[str, str]] = [("traceback", "".join(traceback.format_exception(exc)))]
    seen: set[int] = set()
    pending: list[tuple[str, BaseException]] = [("", exc)]
    while pending:
        path, current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [
            (f"{path}str", str(current)),
            (f"{path}repr", repr(current)),
            (f"{path}args", repr(current.args)),
            (f"{path}notes", repr(getattr(current, "__notes__", None))),
        ]
        for attribute in ("params", "statement", "detail"):
            if hasattr(current, attribute):
                texts.append((f"{path}{attribute}", repr(getattr(current, attribute))))
        for attribute in ("__cause__", "__context__", "orig"):
            linked = getattr(current, attribute, None)
            if isinstance(linked, BaseException):
                pending.append((f"{path}{attribute}.", linked))
    return texts


def frame_locals(exc: BaseException) -> Iterable[tuple[str, Any]]:
    for where, current in [("", exc), ("cause ", exc.__cause__), ("context ", exc.__context__)]:
        if current is None:
            continue
        for frame, _ in traceback.walk_tb(current.__traceback__):
            for name, value in frame.f_locals.items():
                yield f"{where}frame {frame.f_code.co_name} local {name}", value


def _text(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a local whose repr fails shows nothing
        return ""
