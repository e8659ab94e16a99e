"""Shared fixtures: the real data folder beside the checkout, small Keras models."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (real chest X-rays); tests that need it skip when it is absent."""
    if not (DATA / "cxr").is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA
