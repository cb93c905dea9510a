"""AWS KMS master keys (symmetric, including multi-region keys), through boto3.

A :class:`KmsMasterKey` is configured with a *full key ARN* (aliases can be repointed, so they
are refused: a key store must record which key wrapped each data key) and the region this
process runs in. For a multi-region key (id ``mrk-...``) every call goes to the replica in that
region: an ARN of another region is rewritten to the local replica, so a reader never makes a
cross-region call and needs no re-encryption. A single-region key used from another region is a
configuration error, found at construction.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from fieldcrypt import metrics
from fieldcrypt.errors import ConfigurationError, KeyAccessError
from fieldcrypt.keys import kms_logging
from fieldcrypt.keys.master import UnwrapFailed

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/(?P<key>[A-Za-z0-9-]+)$"
)
# A KMS data-key call answers in tens of milliseconds. Without explicit bounds botocore waits 60 s
# to connect and 60 s per read, times every attempt: an endpoint that accepts and never answers
# would hold a request for minutes. With these defaults a call gives up after at most
# max_attempts * (connect + read) seconds plus standard-mode backoff (under 1 + 2 s): about 18 s.
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 3.0
DEFAULT_MAX_ATTEMPTS = 3
_METHODS = {
    "Encrypt": "encrypt",
    "Decrypt": "decrypt",
    "ReEncrypt": "re_encrypt",
    "GetPublicKey": "get_public_key",
}


@dataclass(frozen=True)
class KeyArn:
    """A parsed KMS key ARN."""

    partition: str
    region: str
    account: str
    key: str

    @classmethod
    def parse(cls, arn: str) -> KeyArn:
        match = _ARN.match(arn)
        if match is None:
            hint = " (aliases are not accepted: look up the key ARN with `aws kms describe-key`)"
            raise ConfigurationError(f"{arn!r} is not a full KMS key ARN{hint if 'alias/' in arn else ''}")
        return cls(**match.groupdict())

    @property
    def multi_region(self) -> bool:
        return self.key.startswith("mrk-")

    def in_region(self, region: str) -> KeyArn:
        return KeyArn(self.partition, region, self.account, self.key)

    def __str__(self) -> str:
        return f"arn:{self.partition}:kms:{self.region}:{self.account}:key/{self.key}"


_clients: dict[tuple[str, str | None, int, float, float], KMSClient] = {}
_clients_lock = threading.Lock()


def kms_client(
    region: str,
    *,
    endpoint_url: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> KMSClient:
    """One shared KMS client per region and bounds (clients are thread-safe; sessions are not).

    Retries use botocore's ``standard`` mode (exponential backoff with jitter; throttling,
    transient errors and timeouts retried), not the ``legacy`` default; connect and read
    timeouts are explicit, so the total time of one call is bounded (see the defaults above).
    """
    if max_attempts < 1 or connect_timeout <= 0 or read_timeout <= 0:
        raise ConfigurationError("KMS max_attempts must be >= 1 and timeouts positive")
    cache_key = (region, endpoint_url, max_attempts, connect_timeout, read_timeout)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            config = Config(
                region_name=region,
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
            client = boto3.session.Session().client("kms", config=config, endpoint_url=endpoint_url)
            _clients[cache_key] = client
        return client


class KmsMasterKey:
    """A symmetric AWS KMS key (single- or multi-region) used as a master key.

    Args:
        key_arn: the full key ARN. For a multi-region key, the ARN of any of its replicas.
        region: the region this process calls KMS in (default: the ARN's region).
        client: a KMS client for that region (default: a shared client with standard retries).
        endpoint_url: a KMS endpoint to use instead of AWS's (tests, VPC endpoints).
        connect_timeout / read_timeout / max_attempts: bounds of each KMS call made through the
            default client (seconds; attempts include the first). A hung KMS endpoint fails a
            call with :class:`~fieldcrypt.errors.KeyAccessError` after about
            ``max_attempts * (connect_timeout + read_timeout)`` seconds plus a little backoff.
    """

    def __init__(
        self,
        key_arn: str,
        *,
        region: str | None = None,
        client: KMSClient | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.configured_arn = KeyArn.parse(key_arn)
        region = region or self.configured_arn.region
        if region != self.configured_arn.region and not self.configured_arn.multi_region:
            raise ConfigurationError(
                f"KMS key {key_arn} lives in {self.configured_arn.region} and is not a multi-region "
                f"key, so it cannot be used from {region}; use a multi-region key (mrk-...) and "
                f"replicate it to {region}, or configure region={self.configured_arn.region!r}"
            )
        self.region = region
        self.arn = str(self.configured_arn.in_region(region))
        self._client = (
            client
            if client is not None
            else kms_client(
                region,
                endpoint_url=endpoint_url,
                max_attempts=max_attempts,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
        )
        client_region = self._client.meta.region_name
        if client_region != region:
            raise ConfigurationError(
                f"the KMS client is for {client_region}, but this key is used in {region}"
            )
        kms_logging.protect(self._client)  # data keys stay out of botocore's DEBUG logs

    @property
    def key_id(self) -> str:
        return self.arn

    @property
    def client(self) -> KMSClient:
        return self._client

    def can_unwrap(self, recorded_key_id: str) -> bool:
        """True for copies made by this key, or (multi-region) by any replica of it."""
        if recorded_key_id == self.arn:
            return True
        try:
            other = KeyArn.parse(recorded_key_id)
        except ConfigurationError:
            return False
        mine = self.configured_arn
        return mine.multi_region and (other.partition, other.account, other.key) == (
            mine.partition,
            mine.account,
            mine.key,
        )

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        response = self.call("Encrypt", KeyId=self.arn, Plaintext=data_key, EncryptionContext=dict(context))
        return bytes(response["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        # KeyId is always sent: KMS then refuses a blob made by another key instead of following it.
        response = self.call(
            "Decrypt", KeyId=self.arn, CiphertextBlob=wrapped, EncryptionContext=dict(context)
        )
        return bytes(response["Plaintext"])

    def reencrypt_to(self, wrapped: bytes, context: Mapping[str, str], destination: KmsMasterKey) -> bytes:
        """Rewrap inside KMS (``ReEncrypt``): the data key never leaves KMS in plaintext."""
        response = self.call(
            "ReEncrypt",
            CiphertextBlob=wrapped,
            SourceKeyId=self.arn,
            SourceEncryptionContext=dict(context),
            DestinationKeyId=destination.arn,
            DestinationEncryptionContext=dict(context),
        )
        return bytes(response["CiphertextBlob"])

    def call(self, operation: str, **params: Any) -> Any:
        """One KMS request on this key's client, its failures mapped to fieldcrypt's errors, counted
        and timed in ``fieldcrypt.kms.requests`` / ``fieldcrypt.kms.duration`` (fieldcrypt.metrics).

        Raises:
            UnwrapFailed: KMS says the ciphertext or its context is wrong.
            KeyAccessError: anything else (denied, disabled, missing, throttled, unreachable).
        """
        started = time.perf_counter()
        outcome = "ok"
        try:
            return self._send(operation, params)
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            metrics.kms_request(operation, outcome, time.perf_counter() - started)

    def _send(self, operation: str, params: dict[str, Any]) -> Any:
        method = getattr(self._client, _METHODS[operation])
        try:
            return method(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                raise UnwrapFailed from exc  # wrong context or blob: a swapped or forged row
            raise KeyAccessError(
                _explain(code, self.arn, operation), master_key_id=self.arn, code=code
            ) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise KeyAccessError(
                f"KMS in {self.region} did not answer {operation} in time, after retries; check the "
                "KMS endpoint's health and network path, or raise KmsMasterKey(read_timeout=...)",
                master_key_id=self.arn,
                code=type(exc).__name__,
            ) from exc
        except EndpointConnectionError as exc:
            raise KeyAccessError(
                f"KMS in {self.region} is unreachable ({exc}); check network access to the KMS endpoint",
                master_key_id=self.arn,
                code="EndpointConnectionError",
            ) from exc
        except BotoCoreError as exc:
            raise KeyAccessError(f"KMS call {operation} failed: {exc}", master_key_id=self.arn) from exc

    def __repr__(self) -> str:
        return f"KmsMasterKey({self.arn!r})"


def _outcome(error: BaseException) -> str:
    """A failed request's ``outcome`` attribute: KMS's error code, else the botocore error's name."""
    cause = error.__cause__ if isinstance(error, UnwrapFailed | KeyAccessError) else None
    found = cause if cause is not None else error
    if isinstance(found, ClientError):
        return found.response.get("Error", {}).get("Code", "") or "ClientError"
    return type(found).__name__


def _explain(code: str, arn: str, operation: str) -> str:
    what_to_do = {
        "AccessDeniedException": f"grant kms:{operation} on the key to this role (key policy or IAM)",
        "DisabledException": "the key is disabled: enable it (aws kms enable-key) or rewrap to another key",
        "KMSInvalidStateException": "the key is pending deletion or unavailable: cancel deletion or rewrap",
        "NotFoundException": "no such key in this region: for a multi-region key, replicate it here",
        "ThrottlingException": "throttled after retries: lower the request rate or raise the KMS quota",
        "LimitExceededException": "request quota exceeded after retries: lower the rate or raise the quota",
        "KMSInternalException": "KMS internal error after retries: try again",
        "UnrecognizedClientException": "the AWS credentials were rejected: check the configured credentials",
        "InvalidKeyUsageException": (
            "the key's type does not fit: KmsMasterKey needs a symmetric ENCRYPT_DECRYPT key, "
            "KmsRsaMasterKey an RSA_3072/RSA_4096 ENCRYPT_DECRYPT key"
        ),
    }.get(code, "see the chained botocore error")
    return f"KMS {operation} with {arn} failed ({code or 'unknown error'}): {what_to_do}"
