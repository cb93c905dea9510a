"""Architecture and secrecy rules that must keep holding as the code grows."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fieldcrypt
from fieldcrypt import Place

SRC = Path(fieldcrypt.__file__).parent


def test_core_imports_without_host_libraries() -> None:
    """The core, keys, stores and the boto3 item encryptor load no SQLAlchemy, boto3, PynamoDB, Alembic, click or rich."""
    code = (
        "import sys, fieldcrypt, fieldcrypt.keyring, fieldcrypt.stores, fieldcrypt.keys, fieldcrypt.keys.resolve\n"
        "import fieldcrypt.storage, fieldcrypt.registry, fieldcrypt.testing, fieldcrypt.dynamodb\n"
        "k = fieldcrypt.Keyring('pii', fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())\n"
        "p = fieldcrypt.Place('t', 'c')\n"
        "assert k.decrypt(k.encrypt(b'x', p), p) == b'x'\n"
        "e = fieldcrypt.dynamodb.ItemEncryptor(table='t', key_attributes=['id'],\n"
        "    attributes={'c': fieldcrypt.dynamodb.EncryptedField('S', keyring=k, searchable=True)})\n"
        "item = e.encrypt_item({'id': {'S': '1'}, 'c': {'S': 'x'}})\n"
        "assert e.decrypt_item(item)['c'] == {'S': 'x'}\n"
        "hosts = ('sqlalchemy', 'boto3', 'botocore', 'pynamodb', 'alembic', 'click', 'rich')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in hosts))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_only_one_module_touches_hazmat() -> None:
    """Only fieldcrypt/_aead.py imports cryptography.hazmat."""
    users = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+cryptography\.hazmat", path.read_text(), re.MULTILINE)
    )
    assert users == ["_aead.py"]


def test_reprs_and_logs_never_show_key_material(caplog: pytest.LogCaptureFixture) -> None:
    """Keys, data keys and plaintext appear in no repr and no audit log line."""
    raw = bytes(range(1, 33))
    master = fieldcrypt.LocalMasterKey(raw)
    keyring = fieldcrypt.Keyring("pii", master, fieldcrypt.MemoryKeyStore())
    with caplog.at_level(logging.INFO, logger="fieldcrypt.audit"):
        blob = keyring.encrypt("123-45-6789", Place("users", "ssn"))
        keyring.cache.clear()
        keyring.decrypt(blob, Place("users", "ssn"))
    (record,) = keyring.records(fieldcrypt.Purpose.ENCRYPTION)
    texts = [repr(master), repr(keyring), repr(keyring.cache), repr(record), caplog.text]
    forbidden = [raw.hex(), repr(raw), "123-45-6789", *(repr(w) for w in record.wraps.values())]
    for text in texts:
        for secret in forbidden:
            assert secret not in text


def test_audit_reports_creation_and_unwrap_with_ids(caplog: pytest.LogCaptureFixture) -> None:
    """The fieldcrypt.audit logger reports each data key created and unwrapped, by id and master key."""
    keyring = fieldcrypt.Keyring("pii", fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore())
    with caplog.at_level(logging.INFO, logger="fieldcrypt.audit"):
        blob = keyring.encrypt("x", Place("users", "ssn"))
        keyring.cache.clear()
        keyring.decrypt(blob, Place("users", "ssn"))
    events = [r.fieldcrypt for r in caplog.records if r.name == "fieldcrypt.audit"]  # type: ignore[attr-defined]
    assert [e["event"] for e in events] == ["anchor.created", "data_key.created", "data_key.unwrapped"]
    assert events[0]["purpose"] == "anchor"
    for event in events[1:]:
        assert event["data_key_id"] == keyring.key_id_of(blob)
        assert event["keyring"] == "pii"
        assert event["master_key_id"] == keyring.master_key.key_id


def test_local_master_key_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated key file is owner-only, loads back, and a missing variable says how to make one."""
    path = tmp_path / "master.key"
    made = fieldcrypt.LocalMasterKey.write_new(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert fieldcrypt.LocalMasterKey.from_file(path).key_id == made.key_id
    with pytest.raises(FileExistsError):
        fieldcrypt.LocalMasterKey.write_new(path)
    monkeypatch.setenv("FIELDCRYPT_MASTER_KEY", path.read_text())
    assert fieldcrypt.LocalMasterKey.from_env().key_id == made.key_id
    monkeypatch.delenv("FIELDCRYPT_MASTER_KEY")
    with pytest.raises(fieldcrypt.ConfigurationError, match="fieldcrypt init"):
        fieldcrypt.LocalMasterKey.from_env()
    with pytest.raises(fieldcrypt.ConfigurationError, match="all-zero"):
        fieldcrypt.LocalMasterKey(bytes(32))


_HOOKS_STATE = (
    "from sqlalchemy import Column, Engine, event\n"
    "from sqlalchemy.orm import Mapper\n"
    "def hooks():\n"
    "    from fieldcrypt.sqlalchemy import attach as a\n"
    "    pairs = [(Column, 'before_parent_attach', a._on_column_attach), (Engine, 'before_execute', a._before_execute),\n"
    "             (Engine, 'begin', a._on_begin), (Mapper, 'mapper_configured', a._on_mapper_configured)]\n"
    "    return [event.contains(t, n, f) for t, n, f in pairs]\n"
)


def test_rotation_import_leaves_sqlalchemy_untouched() -> None:
    """`import fieldcrypt.rotation` loads no SQLAlchemy integration; hooks wait for the first Encrypted."""
    code = _HOOKS_STATE + (
        "import sys, fieldcrypt.rotation, fieldcrypt.rotation.admin\n"
        "print(sorted(m for m in sys.modules if m.startswith('fieldcrypt.sqlalchemy')))\n"
        "import fieldcrypt.sqlalchemy\n"
        "print(hooks())\n"
        "from sqlalchemy import String\n"
        "fieldcrypt.sqlalchemy.Encrypted(String(11), keyring='pii')\n"
        "print(hooks())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:3] == ["[]", "[False, False, False, False]", "[True, True, True, True]"]


def test_hooks_installed_late_serve_engines_made_before() -> None:
    """An Engine created before the first Encrypted type still keeps blind indexes and stores ciphertext."""
    code = (
        "import sqlalchemy as sa, fieldcrypt\n"
        "engine = sa.create_engine('sqlite://')\n"
        "from fieldcrypt.sqlalchemy import Encrypted, execute_verified\n"
        "fieldcrypt.register(fieldcrypt.Keyring('pii', fieldcrypt.LocalMasterKey.generate(), fieldcrypt.MemoryKeyStore()))\n"
        "md = sa.MetaData()\n"
        "t = sa.Table('people', md, sa.Column('id', sa.Integer, primary_key=True),\n"
        "             sa.Column('ssn', Encrypted(sa.String(11), keyring='pii', searchable=True)))\n"
        "md.create_all(engine)\n"
        "with engine.begin() as c:\n"
        "    c.execute(t.insert(), [{'id': 1, 'ssn': '123-45-6789'}, {'id': 2, 'ssn': '987-65-4321'}])\n"
        "    c.execute(t.update().where(t.c.id == 2).values(ssn='123-45-6789'))\n"
        "    print(sorted(execute_verified(c, sa.select(t.c.id).where(t.c.ssn == '123-45-6789')).scalars()))\n"
        "    raw = c.exec_driver_sql('SELECT ssn, ssn_bidx FROM people').all()\n"
        "print(all(isinstance(s, bytes) and b'123' not in s and len(i) == 16 for s, i in raw))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[1,", "2]", "True"]
