from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from shared.policy import default_registry

from tests.helpers import EXAMPLES_DIR  # noqa: E402  (../shared/spec/examples, or the vendored copy)
AS_OF = dt.date(2020, 6, 30)


def load_example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def registry():
    return default_registry()


@pytest.fixture
def farmer() -> dict:
    return copy.deepcopy(load_example("nankang-farmer.json")["household"])


@pytest.fixture
def elderly() -> dict:
    return copy.deepcopy(load_example("nankang-dibao-elderly.json")["household"])
