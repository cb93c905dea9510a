"""Keep key material out of botocore's DEBUG logs during fieldcrypt's own KMS calls.

At DEBUG, botocore logs every request ("Making request for ... with params", "Sending http
request") and every response body ("Response body"). For KMS ``Encrypt`` the request holds the
data key being wrapped (base64); for ``Decrypt`` the response holds it. A botocore event hook
cannot change a line already logged, and botocore has no redaction setting, so two parts work
together:

* hooks on fieldcrypt's own KMS clients mark the current context as "inside a fieldcrypt KMS
  call" from ``before-call`` until ``after-call`` / ``after-call-error`` (botocore runs a call,
  its logging included, synchronously in the caller's thread);
* a :class:`logging.Filter` on botocore's and urllib3's loggers replaces the arguments of every
  record emitted inside such a call, keeping only numbers, the operation and short strings (a
  32-byte key is 44 characters of base64 and 64 of hex).

Records of other clients (the application's own AWS calls) are left as they are.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

REDACTED = "<redacted by fieldcrypt>"
LOGGERS = (
    "botocore.endpoint",  # request dict and prepared request, bodies included
    "botocore.parsers",  # response headers and body
    "botocore.awsrequest",
    "botocore.hooks",
    "botocore.auth",
    "botocore.httpsession",
    "botocore.retryhandler",
    "botocore.retries.standard",
    "botocore.retries.adaptive",
    "botocore.regions",
    "botocore.client",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.response",
)
_SHORT = 40  # strings shorter than any spelling of a 32-byte key are kept (hosts, methods, codes)
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("fieldcrypt_kms_call", default=False)
_installed = False
_lock = threading.Lock()


class RedactKmsBodies(logging.Filter):
    """Replaces the arguments of records logged inside a fieldcrypt KMS call."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _inside.get() and record.args:
            if isinstance(record.args, tuple):
                record.args = tuple(_kept(value) for value in record.args)
            else:  # a lone mapping argument (response headers): logging keeps it as the args
                record.args = {name: REDACTED for name in record.args}
        return True


def _kept(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    if type(value).__name__ == "OperationModel":  # its repr is the operation's name only
        return value
    if isinstance(value, str) and len(value) < _SHORT:
        return value
    return REDACTED


def protect(client: Any) -> None:
    """Redact ``client``'s KMS request and response bodies from the logs (idempotent)."""
    _install_filter()
    events = client.meta.events
    events.register_first("before-call.kms", _enter, unique_id="fieldcrypt-redact-enter")
    events.register_last("after-call.kms", _leave, unique_id="fieldcrypt-redact-leave")
    events.register_last("after-call-error.kms", _leave, unique_id="fieldcrypt-redact-leave-error")


def _enter(**_: Any) -> None:
    _inside.set(True)


def _leave(**_: Any) -> None:
    _inside.set(False)


def _install_filter() -> None:
    global _installed
    if _installed:
        return
    with _lock:
        if not _installed:
            redact = RedactKmsBodies()
            for name in LOGGERS:
                logging.getLogger(name).addFilter(redact)
            _installed = True
