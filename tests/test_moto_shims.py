"""fieldcrypt.testing.moto_server: moto's KMS answers RSA Decrypt and MRK ciphertexts as KMS does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def _oaep_encrypt(public_der: bytes, plaintext: bytes, digest: hashes.HashAlgorithm) -> bytes:
    public = serialization.load_der_public_key(public_der)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)
    return public.encrypt(plaintext, oaep)  # type: ignore[union-attr]


@pytest.fixture
def rsa_key(aws_client: Callable[..., Any]) -> tuple[Any, str, bytes]:
    """An RSA_3072 ENCRYPT_DECRYPT key: (client, ARN, DER public key)."""
    kms = aws_client("kms", "us-east-1")
    arn = kms.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    return kms, arn, kms.get_public_key(KeyId=arn)["PublicKey"]


# SHA-1 here is KMS's RSAES_OAEP_SHA_1, which the double must answer as KMS does.
OAEP_HASHES = [("RSAES_OAEP_SHA_256", hashes.SHA256()), ("RSAES_OAEP_SHA_1", hashes.SHA1())]  # noqa: S303


@pytest.mark.parametrize(("algorithm", "digest"), OAEP_HASHES)
def test_rsa_decrypt_opens_oaep_blocks_made_with_the_public_key(
    rsa_key: tuple[Any, str, bytes], algorithm: str, digest: hashes.HashAlgorithm
) -> None:
    """Decrypt with EncryptionAlgorithm returns what was encrypted with GetPublicKey's key (stock moto fails)."""
    kms, arn, public = rsa_key
    blob = _oaep_encrypt(public, b"a 32-byte data key, or anything", digest)
    answer = kms.decrypt(KeyId=arn, CiphertextBlob=blob, EncryptionAlgorithm=algorithm)
    assert answer["Plaintext"] == b"a 32-byte data key, or anything"
    assert answer["KeyId"] == arn
    assert answer["EncryptionAlgorithm"] == algorithm


def test_rsa_decrypt_refuses_what_kms_refuses(
    rsa_key: tuple[Any, str, bytes], aws_client: Callable[..., Any]
) -> None:
    """Tampered block, other algorithm, no KeyId, symmetric key: each gets KMS's error, never plaintext."""
    kms, arn, public = rsa_key
    blob = _oaep_encrypt(public, b"secret", hashes.SHA256())

    def code(**params: Any) -> str:
        with pytest.raises(ClientError) as caught:
            kms.decrypt(**params)
        return str(caught.value.response["Error"]["Code"])

    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    assert code(KeyId=arn, CiphertextBlob=tampered, EncryptionAlgorithm="RSAES_OAEP_SHA_256") == (
        "InvalidCiphertextException"
    )
    assert code(KeyId=arn, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1") == (
        "InvalidCiphertextException"
    )
    assert code(CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256") == "ValidationException"
    symmetric = aws_client("kms", "us-east-1").create_key()["KeyMetadata"]["Arn"]
    assert code(KeyId=symmetric, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256") == (
        "InvalidKeyUsageException"
    )


def test_rsa_multi_region_replica_decrypts_the_primarys_blocks(aws_client: Callable[..., Any]) -> None:
    """An RSA MRK replicated to us-west-2 decrypts there what the primary's public key encrypted."""
    east = aws_client("kms", "us-east-1")
    primary = east.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT", MultiRegion=True)["KeyMetadata"]
    replica = east.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="us-west-2")["ReplicaKeyMetadata"][
        "Arn"
    ]
    blob = _oaep_encrypt(east.get_public_key(KeyId=primary["Arn"])["PublicKey"], b"k" * 64, hashes.SHA256())
    west = aws_client("kms", "us-west-2")
    assert (
        west.decrypt(KeyId=replica, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")[
            "Plaintext"
        ]
        == b"k" * 64
    )


def test_symmetric_mrk_ciphertext_decrypts_in_the_replica_region(aws_client: Callable[..., Any]) -> None:
    """The key-id fix: a symmetric MRK ciphertext (40-character id) decrypts in both regions (stock moto: AccessDenied)."""
    east = aws_client("kms", "us-east-1")
    primary = east.create_key(MultiRegion=True)["KeyMetadata"]
    replica = east.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="us-west-2")["ReplicaKeyMetadata"][
        "Arn"
    ]
    blob = east.encrypt(KeyId=primary["Arn"], Plaintext=b"data key", EncryptionContext={"k": "v"})[
        "CiphertextBlob"
    ]
    west = aws_client("kms", "us-west-2")
    assert (
        west.decrypt(KeyId=replica, CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"]
        == b"data key"
    )
    assert (
        east.decrypt(KeyId=primary["Arn"], CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"]
        == b"data key"
    )


def test_moto_server_restores_the_environment_and_binds_loopback() -> None:
    """moto_server sets fake credentials only while it runs, on 127.0.0.1, and puts the old values back."""
    import os

    from fieldcrypt.testing import moto_server

    before = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_EC2_METADATA_DISABLED")}
    os.environ["AWS_ACCESS_KEY_ID"] = "mine"
    try:
        with moto_server() as endpoint:
            assert endpoint.startswith("http://127.0.0.1:")
            assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
            assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
        assert os.environ["AWS_ACCESS_KEY_ID"] == "mine"
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
