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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("EDITBENCH_DATA") or REPO.parent / "shared" / "data")  # empty = unset
    if not path.is_dir():
        pytest.skip(f"no data directory at {path} (set EDITBENCH_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny():
    from editbench.models import load_model

    return load_model(tiny_cfg())


@pytest.fixture(scope="session")
def smollm2():
    from editbench.models import load_model

    return load_model(SMOLLM2_CFG)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A private EDITBENCH_CACHE for tests that check caching (models keep the shared cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDITBENCH_CACHE", str(cache))
    return cache
