"""Turn configuration into keys: a master key from its configuration string."""

from __future__ import annotations

import os

from fieldcrypt.errors import ConfigurationError
from fieldcrypt.keys.master import LocalMasterKey, MasterKey


def master_key_from(spec: str | MasterKey, *, region: str | None = None) -> MasterKey:
    """A master key from its configuration string: a KMS key ARN, ``rsa:ARN`` (an RSA KMS key, as
    readers of write-only producers' values use it), ``file:PATH`` (a local key file) or
    ``env:VARIABLE`` (a base64 local key in the environment).

    KMS calls go to ``FIELDCRYPT_KMS_ENDPOINT_URL`` when it is set (a VPC endpoint, a test server).
    """
    if not isinstance(spec, str):
        return spec
    if spec.startswith("file:"):
        return LocalMasterKey.from_file(spec[len("file:") :])
    if spec.startswith("env:"):
        return LocalMasterKey.from_env(spec[len("env:") :])
    endpoint_url = os.environ.get("FIELDCRYPT_KMS_ENDPOINT_URL") or None
    if spec.startswith("rsa:arn:"):
        from fieldcrypt.keys.kms_rsa import KmsRsaMasterKey

        return KmsRsaMasterKey(spec[len("rsa:") :], region=region, endpoint_url=endpoint_url)
    if spec.startswith("arn:"):
        from fieldcrypt.keys.kms import KmsMasterKey

        return KmsMasterKey(spec, region=region, endpoint_url=endpoint_url)
    # Never echo the value: a base64 key pasted where its name belongs would be printed in full.
    raise ConfigurationError(
        "the configured master key is not a KMS key ARN, file:PATH (a local key file), "
        "env:VARIABLE (a variable holding a base64 key) or rsa:ARN (an RSA KMS key); its value is not shown, as it may be key "
        "material: if it is a key, move it to a file or an environment variable and give that"
    )
