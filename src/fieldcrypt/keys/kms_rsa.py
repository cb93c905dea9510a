"""Asymmetric (RSA) AWS KMS keys as master keys: write-only producers, and the readers of their values.

An RSA ``ENCRYPT_DECRYPT`` KMS key (``RSA_3072`` or ``RSA_4096``) splits the two halves of a
master key's job. Its public key wraps data keys anywhere, with no KMS call and no AWS
credentials; only principals allowed ``kms:Decrypt`` on the key can unwrap them. So:

- :class:`RsaProducerKey` holds the public key only (fetched once with ``GetPublicKey``, or
  loaded from a PEM/DER file outside AWS). It wraps and never unwraps: a process configured with
  it (a *producer*: a sign-up form, a partner upload, an edge function) writes values and can
  read none, its own included (:class:`~fieldcrypt.keyring.Keyring` refuses to decrypt).
- :class:`KmsRsaMasterKey` is the same key as readers use it: unwrap through KMS ``Decrypt`` with
  ``EncryptionAlgorithm=RSAES_OAEP_SHA_256``; wrap, like a producer, with the public key.

KMS asymmetric decryption takes no encryption context, so the context that symmetric wraps carry
(keyring, data-key id, purpose) travels inside the OAEP block: the wrapped payload is
``data_key || SHA-256(canonical context)`` (64 bytes), checked on unwrap, so a wrapped copy moved
to another key-store row fails to unwrap (docs/format.md, "RSA wraps").

Multi-region RSA keys work as symmetric ones do: the ARN is rewritten to the process's region,
and a replica opens copies filed under any replica's ARN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fieldcrypt import _aead
from fieldcrypt.errors import ConfigurationError, KeyAccessError
from fieldcrypt.keys.kms import KeyArn, KmsMasterKey
from fieldcrypt.keys.master import UnwrapFailed, canonical_context

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

__all__ = ["ALGORITHM", "KmsRsaMasterKey", "RsaProducerKey", "rsa_payload"]

ALGORITHM = "RSAES_OAEP_SHA_256"
KEY_SPECS = {"RSA_3072": 3072, "RSA_4096": 4096}
DATA_KEY_BYTES = 32
PAYLOAD_BYTES = DATA_KEY_BYTES + hashlib.sha256().digest_size


def rsa_payload(data_key: bytes, context: Mapping[str, str]) -> bytes:
    """What the OAEP block holds: the data key, then SHA-256 of the canonical context."""
    return data_key + hashlib.sha256(canonical_context(context)).digest()


def _open_payload(payload: bytes, context: Mapping[str, str]) -> bytes:
    expected = rsa_payload(bytes(DATA_KEY_BYTES), context)[DATA_KEY_BYTES:]
    if len(payload) != PAYLOAD_BYTES or not _aead.constant_time_equal(payload[DATA_KEY_BYTES:], expected):
        raise UnwrapFailed  # another row's copy, or a block that is not a fieldcrypt wrap
    return payload[:DATA_KEY_BYTES]


def _regional_arn(key_arn: str, region: str | None) -> KeyArn:
    arn = KeyArn.parse(key_arn)
    region = region or arn.region
    if region != arn.region and not arn.multi_region:
        raise ConfigurationError(
            f"KMS key {key_arn} lives in {arn.region} and is not a multi-region key, so it cannot be "
            f"used from {region}; configure region={arn.region!r}"
        )
    return arn.in_region(region)


class RsaProducerKey:
    """The public half of an RSA KMS key: wraps data keys locally and can never unwrap one.

    Args:
        key_arn: the key's full ARN (the key store records each wrap under it; for a
            multi-region key, any replica's ARN).
        public_key: the key's public key, DER (what ``GetPublicKey`` returns) or PEM.
        region: the region the key's ARN is recorded in (default: the ARN's; multi-region only).

    Use :meth:`from_kms` (one ``GetPublicKey`` call, which checks the key's type) or
    :meth:`from_file` (no AWS at all: ``aws kms get-public-key`` output saved beside the app).
    """

    write_only = True  # Keyring: never decrypt, never encrypt under a key this process did not make
    public_wrap = True  # anyone with the public key can wrap: such a wrap authenticates nothing

    def __init__(self, key_arn: str, public_key: bytes, *, region: str | None = None) -> None:
        self._arn = str(_regional_arn(key_arn, region))
        try:
            self._public = _aead.RsaPublicKey(public_key)
        except ValueError as exc:
            raise ConfigurationError(f"the public key of {self._arn} is unusable: {exc}") from None
        if self._public.bits not in KEY_SPECS.values():
            raise ConfigurationError(
                f"the public key of {self._arn} is RSA-{self._public.bits}; fieldcrypt wraps under "
                "RSA_3072 or RSA_4096 KMS keys only"
            )

    @classmethod
    def from_kms(
        cls,
        key_arn: str,
        *,
        region: str | None = None,
        client: KMSClient | None = None,
        endpoint_url: str | None = None,
    ) -> RsaProducerKey:
        """Fetch the public key with one ``GetPublicKey`` call (needs ``kms:GetPublicKey`` only).

        Raises:
            ConfigurationError: the key is not an RSA_3072/RSA_4096 ENCRYPT_DECRYPT key with
                RSAES_OAEP_SHA_256.
            KeyAccessError: KMS refused or could not be reached.
        """
        kms = KmsMasterKey(key_arn, region=region, client=client, endpoint_url=endpoint_url)
        answer = kms.call("GetPublicKey", KeyId=kms.arn)
        # KeySpec, or CustomerMasterKeySpec: its deprecated name, which some KMS doubles return alone.
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        usage = answer.get("KeyUsage")
        if (
            spec not in KEY_SPECS
            or usage != "ENCRYPT_DECRYPT"
            or ALGORITHM not in answer.get("EncryptionAlgorithms", [])
        ):
            raise ConfigurationError(
                f"KMS key {kms.arn} is {spec} {usage}; a producer needs an RSA_3072 or RSA_4096 "
                f"ENCRYPT_DECRYPT key that supports {ALGORITHM}"
            )
        return cls(kms.arn, bytes(answer["PublicKey"]), region=kms.region)

    @classmethod
    def from_file(cls, path: str | Path, key_arn: str, *, region: str | None = None) -> RsaProducerKey:
        """Load the public key from a PEM or DER file (``aws kms get-public-key`` output, decoded)."""
        try:
            encoded = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read public key file {path}: {exc.strerror}") from exc
        return cls(key_arn, encoded, region=region)

    @property
    def key_id(self) -> str:
        return self._arn

    @property
    def bits(self) -> int:
        return self._public.bits

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError("data keys are 32 bytes")
        return self._public.encrypt(rsa_payload(data_key, context))

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        raise KeyAccessError(
            f"{self._arn} is configured as a write-only producer key (its public half): it cannot "
            "unwrap data keys; read in a process configured with KmsRsaMasterKey and kms:Decrypt",
            master_key_id=self._arn,
            code="WriteOnlyProducer",
        )

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return False  # the private key never leaves KMS, and a producer may not call Decrypt

    def __repr__(self) -> str:
        return f"RsaProducerKey({self._arn!r}, RSA-{self._public.bits}, write-only)"


class KmsRsaMasterKey:
    """An RSA KMS key as readers use it: unwraps with KMS ``Decrypt``, wraps with its public key.

    Anyone holding the public key can wrap under it, so an anchor wrapped under it alone is not
    trusted (fieldcrypt.datakeys): a process that also writes keeps a symmetric master key as
    its ``master_key`` and this one in ``also_decrypt_with``, or pins ``anchor_id``.

    Arguments as :class:`~fieldcrypt.keys.kms.KmsMasterKey` (the full ARN; keywords ``region``,
    ``client``, ``endpoint_url``, ``connect_timeout``, ``read_timeout``, ``max_attempts``). The public key is fetched with ``GetPublicKey``
    the first time this process wraps a data key, then kept.
    """

    public_wrap = True

    def __init__(self, key_arn: str, **kms_options: Any) -> None:
        # KmsMasterKey brings the ARN rules, the shared client and its log redaction; its keyword
        # options (region, client, endpoint_url, timeouts, attempts) are taken as they are.
        self._kms = KmsMasterKey(key_arn, **kms_options)
        self._producer: RsaProducerKey | None = None

    @property
    def key_id(self) -> str:
        return self._kms.arn

    @property
    def region(self) -> str:
        return self._kms.region

    def producer_key(self) -> RsaProducerKey:
        """This key's public half (one ``GetPublicKey`` call, the first time)."""
        if self._producer is None:
            self._producer = RsaProducerKey.from_kms(self._kms.arn, client=self._kms.client)
        return self._producer

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        return self.producer_key().wrap(data_key, context)

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        # KeyId is always sent (KMS requires it for asymmetric keys, and it pins this key).
        answer: Any = self._kms.call(
            "Decrypt", KeyId=self._kms.arn, CiphertextBlob=wrapped, EncryptionAlgorithm=ALGORITHM
        )
        return _open_payload(bytes(answer["Plaintext"]), context)

    def can_unwrap(self, recorded_key_id: str) -> bool:
        return self._kms.can_unwrap(recorded_key_id)

    def __repr__(self) -> str:
        return f"KmsRsaMasterKey({self._kms.arn!r})"
