"""Key-use reports on the ``fieldcrypt.audit`` logger: ids and contexts only, never key material."""

from __future__ import annotations

import logging

from fieldcrypt import metrics
from fieldcrypt.keys.record import DataKeyRecord

logger = logging.getLogger("fieldcrypt.audit")


def report(event: str, record: DataKeyRecord, master_key_id: str | None = None, **extra: str) -> None:
    """Log one key event, e.g. ``data_key.created``, with structured fields under ``fieldcrypt``."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "event": event,
        "keyring": record.keyring,
        "data_key_id": record.key_id,
        "purpose": record.purpose.value,
        "master_key_id": master_key_id,
        **extra,
    }
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    logger.info(text, extra={"fieldcrypt": fields})


def warn(event: str, **fields: str | None) -> None:
    """Log a security event (e.g. ``blind_index.mismatch``) at WARNING: names and row keys only."""
    if not logger.isEnabledFor(logging.WARNING):
        return
    shown = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
    logger.warning(" ".join(f"{k}={v}" for k, v in shown.items()), extra={"fieldcrypt": shown})


def blind_index_mismatch(table: str, column: str, row: str | None) -> None:
    """A blind-index match that does not decrypt to the searched value was dropped: logged here with
    the row's key, and counted in ``fieldcrypt.blind_index.dropped`` by table and column only."""
    metrics.blind_index_dropped(table, column)
    warn("blind_index.mismatch", table=table, column=column, row=row)
