"""One error tree: every exception fieldcrypt defines lives in fieldcrypt.errors under FieldcryptError,
and values of the wrong shape or format come out as its decryption errors, never raw parser errors."""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import inspect
import pkgutil
import uuid

import pytest
import sqlalchemy as sa

import fieldcrypt
from fieldcrypt import codecs, errors
from fieldcrypt import format as fmt
from fieldcrypt.errors import (
    DecryptionError,
    FieldcryptError,
    MalformedCiphertext,
    UnsupportedFormatError,
    ValueTypeError,
)

PLACE = fieldcrypt.Place("users", "age")
# Authentic plaintext bytes that no parser of the codec accepts (a value of another type).
SECRET = "\u00e9t\u00e9"


class Color(enum.Enum):
    RED = 1


def _modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages(fieldcrypt.__path__, "fieldcrypt.")
        if not m.name.endswith("__main__")
    ]


def test_every_exception_class_lives_in_errors_and_derives_from_the_root() -> None:
    """Walking every fieldcrypt module finds no Exception subclass defined outside errors.py or
    outside the FieldcryptError tree."""
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("fieldcrypt"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    assert len(_modules()) > 40
    assert {name for name, cls in found.items() if cls.__module__ != "fieldcrypt.errors"} == set()
    assert {name for name, cls in found.items() if not issubclass(cls, FieldcryptError)} == set()
    assert {"KeyStoreConflict", "MalformedCiphertext", "UnwrapFailed", "AuthenticationFailed"} <= {
        cls.__name__ for cls in found.values()
    }


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (codecs.FLOAT, b"abc"),  # struct.error
        (codecs.DECIMAL, b"1.2.3"),  # decimal.InvalidOperation
        (codecs.TEXT, b"\xff\xfe"),  # UnicodeDecodeError
        (codecs.JSON, b"{not json"),  # json.JSONDecodeError
        (codecs.INT, SECRET.encode()),
        (codecs.BOOL, b"yes"),
        (codecs.DATE, SECRET.encode()),
        (codecs.DATETIME, b"2024-99-99"),
        (codecs.TIME, b"25:99"),
        (codecs.TIMEDELTA, b"1:2"),
        (codecs.UUID, b"short"),
        (codecs.EnumCodec(Color), b"BLUE"),
        (codecs.ChoiceCodec(["a", "b"]), b"zzq"),
    ],
    ids=lambda v: getattr(v, "name", "data") if not isinstance(v, bytes) else "data",
)
def test_authentic_value_of_the_wrong_shape_is_a_decryption_error(
    codec: codecs.Codec[object], data: bytes
) -> None:
    """codec.decode turns each parser's own error into ValueTypeError naming the place, not the value."""
    with pytest.raises(ValueTypeError) as caught:
        codec.decode(data, PLACE)
    message = str(caught.value)
    assert message.startswith("cannot decrypt users.age: the value is authentic but is not a valid ")
    assert "declare the type they were encrypted with" in message
    assert data.decode("utf-8", "replace") not in message
    assert isinstance(caught.value, DecryptionError)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_orm_read_of_a_column_whose_type_changed_raises_decryption_error(
    sqlite_engine: sa.Engine, local_keyring: fieldcrypt.Keyring
) -> None:
    """A text value read back as Encrypted(Float) / Encrypted(Numeric) is a DecryptionError naming
    users.age (it was a bare struct.error / decimal.InvalidOperation)."""
    from fieldcrypt.sqlalchemy import Encrypted

    fieldcrypt.register(local_keyring)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, age BLOB)"))
        blob = local_keyring.encrypt(SECRET.encode(), PLACE)
        conn.execute(sa.text("INSERT INTO users VALUES (1, :b)"), {"b": blob})
    for declared in (sa.Float(), sa.Numeric(10, 2), sa.Integer(), sa.Date(), sa.JSON(), sa.Uuid()):
        table = sa.Table(
            "users",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("age", Encrypted(declared, keyring="pii")),
        )
        with (
            sqlite_engine.connect() as conn,
            pytest.raises(ValueTypeError, match=r"^cannot decrypt users\.age: ") as caught,
        ):
            conn.execute(sa.select(table.c.age)).all()
        assert SECRET not in str(caught.value)


def test_key_id_of_a_malformed_or_unknown_value_is_a_format_error(local_keyring: fieldcrypt.Keyring) -> None:
    """Keyring.key_id_of raises the format errors of the tree, with what to do, not internal ones."""
    with pytest.raises(
        MalformedCiphertext, match=r"^cannot decrypt value: not a fieldcrypt ciphertext \(pass"
    ):
        local_keyring.key_id_of(b"\x01short")
    with pytest.raises(MalformedCiphertext):
        local_keyring.key_id_of(b"")
    with pytest.raises(
        UnsupportedFormatError, match=r"format version 9 is not supported.*upgrade fieldcrypt"
    ) as caught:
        local_keyring.key_id_of(bytes([9]) + bytes(60))
    assert caught.value.version == 9
    with pytest.raises(MalformedCiphertext):
        fmt.from_text("not base64!")
    assert issubclass(errors.KeyStoreConflict, FieldcryptError)
    assert fmt.UnknownVersion is UnsupportedFormatError


def test_codec_registry_by_name_covers_every_codec_and_needs_the_enum_values() -> None:
    """codecs.named resolves every name; "enum" needs its class or values; unknown names are refused."""
    assert [codecs.named(n).name for n in codecs.NAMES if n != "enum"] == [
        n for n in codecs.NAMES if n != "enum"
    ]
    assert codecs.named("enum", enum_class=Color).from_bytes(b"RED") is Color.RED
    assert codecs.named("enum", choices=["a", "b"]).to_bytes("a") == b"a"
    with pytest.raises(errors.ConfigurationError, match=r"^the enum codec needs the enum's class or values"):
        codecs.named("enum")
    with pytest.raises(errors.ConfigurationError, match=r"^unknown codec 'money'; choose one of bool, bytes"):
        codecs.named("money")
    with pytest.raises(TypeError, match=r"^expected one of the Enum's 2 values$"):
        codecs.named("enum", choices=["a", "b"]).to_bytes("c")
    assert (dt.date, uuid.UUID) == (codecs.DATE.python_type, codecs.UUID.python_type)
