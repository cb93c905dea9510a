"""Async support: warm keyrings up off the event loop.

Bind and result processors run on the event loop thread under ``AsyncSession``. In steady state
they only use data keys already unwrapped in memory; the KMS calls (unwrapping, creating the first
data key or blind-index key) happen once per key and per process. :func:`warm_up` does them in a
worker thread at start-up, so no request waits on KMS while holding the loop.
"""

from __future__ import annotations

from fieldcrypt.place import Place
from fieldcrypt.registry import get_keyring


def warm_up_sync(*keyrings: str, blind_index: bool = True) -> None:
    """Make every named keyring ready to encrypt (and to index, unless ``blind_index=False``)."""
    for name in keyrings or ("pii",):
        keyring = get_keyring(name)
        keyring.warm_up()
        if blind_index:
            keyring.blind_index(b"", Place("fieldcrypt", "warm-up"))  # creates the index key if none


async def warm_up(*keyrings: str, blind_index: bool = True) -> None:
    """:func:`warm_up_sync` in a worker thread; await it at application start-up."""
    import asyncio  # here: a synchronous application importing fieldcrypt.sqlalchemy never needs it

    await asyncio.to_thread(warm_up_sync, *keyrings, blind_index=blind_index)
