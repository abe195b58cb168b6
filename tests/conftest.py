"""Shared fixtures: tiny random models (fast, in memory), the real SmolLM2, the data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(arch: str = "llama", seed: int = 0) -> dict:
    return {"name": f"tiny-{arch}", "source": "tiny", "path": None, "gguf_file": None, "dtype": "float32",
            "device": "cpu", "device_map": None, "trust_remote_code": False,
            "tiny": {"arch": arch, "n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4,
                     "n_kv_heads": 2, "seed": seed}}


SMOLLM2_CFG = {"name": "smollm2-135m", "source": "embedded", "path": None, "gguf_file": None, "dtype": "float32",
               "device": "cpu", "device_map": None, "trust_remote_code": False, "tiny": None}


# Small files in each loader's schema, laid out like the data directory (tests/fixtures/data/README.md).
FIXTURE_DATA = REPO / "tests" / "fixtures" / "data"
# Set to 1 to run the suite as a clone with nothing beside it would (CI runs it both ways).
HIDE_ENV = "EDITBENCH_TESTS_NO_SHARED_DATA"


def full_data_dir() -> Path | None:
    """The full offline data: $EDITBENCH_DATA, else ../shared/data beside the repository; None if absent."""
    if os.environ.get(HIDE_ENV) == "1":
        return None
    path = Path(os.environ.get("EDITBENCH_DATA") or REPO.parent / "shared" / "data")  # empty = unset
    return path if path.is_dir() else None


@pytest.fixture()
def shared_data(request) -> Path:
    """The full offline data, for tests that check the real files; they say what they need with
    `@pytest.mark.full_data("...")`, and skip with that reason when the data is absent."""
    path = full_data_dir()
    if path is None:
        marker = request.node.get_closest_marker("full_data")
        what = marker.args[0] if marker else "the full offline data"
        pytest.skip(f"needs {what} (full data: set EDITBENCH_DATA or put it at ../shared/data)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A data directory for every test that only needs records in the right schema: the full data
    when present, else the small fixtures shipped in tests/fixtures/data."""
    return full_data_dir() or FIXTURE_DATA


@pytest.fixture(scope="session")
def run_data() -> Path:
    """For runs that need many CounterFact edits: the full data, else the demo set in the package."""
    from editbench.demo import demo_dir

    return full_data_dir() or demo_dir()


@pytest.fixture(scope="session")
def tiny():
    from editbench.models.loading import load_model

    return load_model(tiny_cfg())


@pytest.fixture(scope="session")
def smollm2():
    from editbench.models.loading import load_model

    return load_model(SMOLLM2_CFG)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A private EDITBENCH_CACHE for tests that check caching (models keep the shared cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDITBENCH_CACHE", str(cache))
    return cache
