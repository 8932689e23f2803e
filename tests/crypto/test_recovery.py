from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hygieia import crypto

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "recovery.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["code"])
def test_recovery_vectors(case: dict[str, Any]) -> None:
    code_bytes = base64.b64decode(case["code_bytes"])
    for text in [case["code"], *case["also_parses"]]:
        assert crypto.parse_recovery_code(text) == code_bytes
    keys = crypto.derive_recovery_keys(code_bytes, base64.b64decode(case["recovery_salt"]))
    assert keys.wrap_key == base64.b64decode(case["recovery_wrap"])
    assert keys.auth_key == base64.b64decode(case["recovery_auth"])
    assert keys.wrap_key != keys.auth_key


@pytest.mark.parametrize("text", VECTORS["malformed"])
def test_malformed_codes(text: str) -> None:
    with pytest.raises(ValueError):
        crypto.parse_recovery_code(text)


def test_new_code_shape_and_roundtrip() -> None:
    code = crypto.new_recovery_code()
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){7}", code)
    assert len(crypto.parse_recovery_code(code)) == 20
    assert crypto.new_recovery_code() != code


def test_derive_validates_lengths() -> None:
    with pytest.raises(ValueError):
        crypto.derive_recovery_keys(b"x" * 19, bytes(16))
    with pytest.raises(ValueError):
        crypto.derive_recovery_keys(b"x" * 20, bytes(8))
