"""Master keys (key-encryption keys) and data-key records."""
