"""moto's KMS, fixed where fieldcrypt needs it, in this process: :func:`moto_server`.

moto (5.2.x) is the usual stand-in for KMS and DynamoDB in tests, and it gets two things wrong
that fieldcrypt users meet at once. This module is the one place both are worked around; it
patches moto only, never boto3 or botocore, and only when :func:`moto_server` or
:func:`patch_moto_kms` is called (importing it changes nothing).

1. Multi-region keys. moto packs the key id into a fixed 36-byte field of its ciphertext blobs;
   ``mrk-`` ids are 40 characters, so the id is cut and every ``Decrypt`` of an MRK ciphertext
   fails with ``AccessDeniedException`` in every region (which fieldcrypt reports, truthfully
   for AWS and misleadingly here, as "grant kms:Decrypt"). The fix widens the field to 48 bytes
   and strips the padding when a blob is read.
2. RSA keys. moto creates ``RSA_*`` ``ENCRYPT_DECRYPT`` keys and answers ``GetPublicKey``, but its
   ``Decrypt`` ignores ``EncryptionAlgorithm``: a valid RSAES-OAEP block made with the public key
   fails with ``InvalidCiphertextException``. The fix answers ``Decrypt`` with an RSA algorithm
   as KMS does: OAEP with the key's private key (SHA-1 or SHA-256, as asked),
   ``InvalidCiphertextException`` for a block that does not decrypt, ``InvalidKeyUsageException``
   for an algorithm the key does not support, a validation error without ``KeyId``.

The patches live in moto's modules, so they reach only a server running in this process (a
``ThreadedMotoServer``, which :func:`moto_server` starts); a moto server started as its own
program (``moto_server`` on the command line, a container) stays unpatched.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fieldcrypt import _aead

__all__ = ["moto_server", "patch_moto_kms"]

_FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance-metadata address from a test
}
_MRK_KEY_ID_LEN = 48  # "mrk-" + 32 hex digits is 36 + 4: room for it, with padding


@contextmanager
def moto_server(*, port: int = 0, fake_credentials: bool = True) -> Iterator[str]:
    """Run moto's server (KMS, DynamoDB, ...) in this process on 127.0.0.1; yield its endpoint URL.

    ``with moto_server() as endpoint_url:`` then point boto3 clients (``endpoint_url=``),
    ``KmsMasterKey(..., endpoint_url=...)`` and PynamoDB models (``Meta.host``) at it. Both moto
    fixes of this module are applied first. ``port=0`` picks a free port. With
    ``fake_credentials`` (the default) the AWS credential variables are set to fake values and
    instance-metadata lookups are disabled for the duration, then restored, so no real account
    is ever used by mistake.

    Needs moto with its server extra (``pip install 'moto[server,kms,dynamodb]'``).
    """
    from moto.server import ThreadedMotoServer

    patch_moto_kms()
    saved = {name: os.environ.get(name) for name in _FAKE_ENVIRONMENT}
    if fake_credentials:
        os.environ.update(_FAKE_ENVIRONMENT)
    # An explicit address: ThreadedMotoServer binds every interface (0.0.0.0) unless told.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound_port = server.get_host_and_port()
        yield f"http://{host}:{bound_port}"
    finally:
        server.stop()
        if fake_credentials:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def patch_moto_kms() -> None:
    """Apply both KMS fixes to the moto imported in this process (idempotent)."""
    _widen_key_id_field()
    _answer_rsa_decrypt()


def _widen_key_id_field() -> None:
    from moto.kms import utils

    if utils.KEY_ID_LEN >= _MRK_KEY_ID_LEN:
        return
    utils.KEY_ID_LEN = _MRK_KEY_ID_LEN
    # The header layout is computed from KEY_ID_LEN at import time: recompute what depends on it.
    utils.HEADER_LEN = utils.KEY_ID_LEN + utils.IV_LEN + utils.TAG_LEN
    utils.CIPHERTEXT_HEADER_FORMAT = f">{utils.KEY_ID_LEN}s{utils.IV_LEN}s{utils.TAG_LEN}s"
    original = utils._deserialize_ciphertext_blob

    def deserialize(ciphertext_blob: bytes) -> Any:
        parsed = original(ciphertext_blob)
        return utils.Ciphertext(
            key_id=parsed.key_id.rstrip("\x00"), iv=parsed.iv, ciphertext=parsed.ciphertext, tag=parsed.tag
        )

    utils._deserialize_ciphertext_blob = deserialize


def _answer_rsa_decrypt() -> None:
    from moto.kms.responses import KmsResponse

    if getattr(KmsResponse, "_fieldcrypt_rsa", False):
        return
    symmetric_decrypt = KmsResponse.decrypt

    def decrypt(self: Any) -> str:
        algorithm = self._get_param("EncryptionAlgorithm") or "SYMMETRIC_DEFAULT"
        if algorithm == "SYMMETRIC_DEFAULT":
            return symmetric_decrypt(self)
        from moto.kms.exceptions import InvalidCiphertextException

        key = _rsa_key(self, algorithm)
        try:
            plaintext = _aead.rsa_oaep_decrypt(
                key.private_key.private_key, self._get_param("CiphertextBlob"), algorithm
            )
        except _aead.AuthenticationFailed:
            raise InvalidCiphertextException from None
        return _answer(Plaintext=plaintext, KeyId=key.arn, EncryptionAlgorithm=algorithm)

    # setattr: this is a patch of moto's class on purpose (see the module docstring).
    setattr(KmsResponse, "decrypt", decrypt)  # noqa: B010
    setattr(KmsResponse, "_fieldcrypt_rsa", True)  # noqa: B010


def _rsa_key(response: Any, algorithm: str) -> Any:
    """The key a request with an RSA algorithm names; KMS requires KeyId for asymmetric keys."""
    from moto.kms.exceptions import InvalidKeyUsageException, ValidationException

    key_id = response._get_param("KeyId")
    if not key_id:
        raise ValidationException("KeyId is required with an asymmetric EncryptionAlgorithm")
    response._validate_key_id(key_id)  # NotFoundException for an unknown key, as moto answers
    backend = response.kms_backend
    key = backend.keys[backend.any_id_to_key_id(key_id)]
    if key.key_usage != "ENCRYPT_DECRYPT" or algorithm not in (key.encryption_algorithms or []):
        raise InvalidKeyUsageException
    return key


def _answer(**fields: Any) -> str:
    return json.dumps(
        {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in fields.items()}
    )
