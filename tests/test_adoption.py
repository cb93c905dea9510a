"""fieldcrypt.adoption: the one rule telling pre-adoption plaintext from v1 ciphertext."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import pytest

import fieldcrypt
from fieldcrypt import adoption, codecs
from fieldcrypt import format as fmt


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@pytest.fixture
def blob(local_keyring: fieldcrypt.Keyring) -> bytes:
    """A real v1 ciphertext."""
    return local_keyring.encrypt(b"123-45-6789", fieldcrypt.Place("users", "ssn"))


def test_binary_ciphertext_is_found_in_every_driver_form(blob: bytes) -> None:
    """bytes (psycopg, pymysql, sqlite3) and memoryview hold the same v1 value."""
    assert adoption.ciphertext_in(blob, text=False) == blob
    assert adoption.ciphertext_in(memoryview(blob), text=False) == blob
    assert adoption.ciphertext_in(bytearray(blob), text=False) == blob


def test_text_ciphertext_is_its_base64(blob: bytes) -> None:
    """Text storage holds standard base64; the bytes themselves are not a text-storage value."""
    assert adoption.ciphertext_in(fmt.to_text(blob), text=True) == blob
    assert adoption.ciphertext_in(blob, text=True) is None


@pytest.mark.parametrize(
    "stored",
    [b"123-45-6789", "123-45-6789", 41, 1.5, b"41", b"2024-01-31", b"\x01short", "AQUA", "ASIA"],
)
def test_plaintext_forms_are_not_ciphertext(stored: object) -> None:
    """Widened plaintext (bytes, SQLite's str/int/float, short words that are valid base64) is plaintext."""
    assert adoption.ciphertext_in(stored, text=False) is None
    assert adoption.ciphertext_in(stored, text=True) is None


@pytest.mark.parametrize(
    ("codec", "stored", "value"),
    [
        (codecs.TEXT, b"123-45-6789", "123-45-6789"),  # PostgreSQL BYTEA / MariaDB BLOB
        (codecs.TEXT, "123-45-6789", "123-45-6789"),  # SQLite, text storage
        (codecs.INT, b"41", 41),
        (codecs.INT, 41, 41),  # SQLite keeps INTEGER storage
        (codecs.BOOL, b"true", True),  # PostgreSQL's text form
        (codecs.BOOL, b"0", False),  # MariaDB's TINYINT
        (codecs.DATE, b"2024-01-31", dt.date(2024, 1, 31)),
        (codecs.DECIMAL, b"12.50", Decimal("12.50")),
        (codecs.JSON, b'{"a": [1, 2]}', {"a": [1, 2]}),
        (codecs.EnumCodec(Color), b"BLUE", Color.BLUE),  # SQLAlchemy's Enum stores member names
    ],
)
def test_plaintext_reads_back_as_the_codec_type(
    codec: codecs.Codec[object], stored: object, value: object
) -> None:
    """The database's text form of a value parses back to exactly the Python value."""
    assert codec.from_bytes(adoption.plaintext_bytes(codec, stored)) == value


def test_a_truncated_ciphertext_is_never_plaintext(blob: bytes) -> None:
    """A value beginning with the version byte but too short for v1 is refused, not read as text."""
    with pytest.raises(adoption.DamagedCiphertext):
        adoption.plaintext_bytes(codecs.TEXT, blob[:30])
    with pytest.raises(adoption.DamagedCiphertext):
        adoption.plaintext_bytes(codecs.TEXT, "\x01abc")


def test_an_invalid_plaintext_names_the_codec_not_the_value() -> None:
    """A plaintext the codec cannot parse raises a ConfigurationError that does not quote it."""
    with pytest.raises(
        fieldcrypt.ConfigurationError, match=r"^a plaintext value is not a valid int: ValueError$"
    ):
        adoption.plaintext_bytes(codecs.INT, b"forty-one")
