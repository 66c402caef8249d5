"""Booking numbers: 6 characters of Crockford base32 (no I, L, O, U), easy to read aloud and type.

32**6 ≈ 1.07 billion numbers; the bookings table keeps them unique (a unique index), and the
repository draws again on the rare clash.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: I, L, O and U left out
LENGTH = 6
# What people type or say for the characters left out (Crockford's decoding rules).
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_PATTERN = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")


def new_number() -> str:
    """A fresh random booking number (not yet checked for uniqueness)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(text: str) -> str | None:
    """The booking number in ``text`` (any case, spaces or hyphens, O for 0, I/L for 1), or None."""
    # NFKC turns full-width letters, digits and hyphens (typed on a Japanese keyboard) into ASCII.
    cleaned = re.sub(r"[\s\-\u2010\u30fc]", "", unicodedata.normalize("NFKC", text)).upper().translate(_READ_AS)
    return cleaned if _PATTERN.match(cleaned) else None
