"""Installed anywhere: the wheel carries its configs and demo data, and runs from an empty directory.

The wheel test builds the wheel offline from a copy of the sources, installs it with no index and no
dependencies into a fresh virtual environment that does not see the repository (the project's
dependencies come in through a .pth line naming this interpreter's site-packages: a plain path line,
so the editable install's own .pth hooks there are not run), then runs the console script from an
empty directory. Deselect it with `-m "not wheel"`.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from editbench.__main__ import next_steps
from editbench.config import CONF_DIR

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "src", "baselines", "evaluation")


def test_next_steps_name_the_run_dir_and_the_three_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = next_steps(tmp_path / "outputs" / "run 1")
    lines = text.strip().splitlines()
    assert lines[0] == "Run directory: 'outputs/run 1'"
    assert "-m editbench.report 'outputs/run 1' --by method" in lines[2]
    assert "--plot-norms 'outputs/run 1'" in lines[3]
    assert "sync 'outputs/run 1'/wandb/offline-run-*" in lines[4]
    assert "logger.wandb.mode=disabled" in next_steps(tmp_path, "disabled").splitlines()[-1]


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.wheel
def test_wheel_installs_and_runs_from_an_empty_directory(tmp_path):
    # 1. The wheel, built offline from a copy (the working tree stays free of build/ and egg-info).
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], tmp_path, dict(os.environ))
    (wheel,) = dist.glob("editbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"editbench/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    for module in ("editbench/demo/stats-text.txt", "editbench/demo/counterfact_easyedit_mend_format/counterfact-edit.json",
                   "baselines/memit.py", "evaluation/downstream.py", "editbench/methods.py"):
        assert module in names, module

    # 2. A fresh venv, the wheel only; the dependencies through a plain path line.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                           text=True).strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()])
    (purelib / "project-deps.pth").write_text("".join(f"{p}\n" for p in deps if Path(p).is_dir()))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         tmp_path, dict(os.environ))

    # 3. From an empty directory, with no PYTHONPATH and no data directory: the demo set.
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDITBENCH_DATA", "VIRTUAL_ENV")}
    env.update(EDITBENCH_CACHE=str(tmp_path / "cache"), WANDB_MODE="disabled", OMP_NUM_THREADS="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    where = _run([str(python), "-c", "import editbench, editbench.methods, baselines, evaluation; "
                  "print(editbench.__file__); print(baselines.__file__); print(sorted(editbench.methods.REGISTRY))"],
                 empty, env).stdout.splitlines()
    assert all(Path(line).is_relative_to(venv) for line in where[:2]), where
    assert "mose" in where[2] and "memit" in where[2], where

    script = venv / "bin" / "editbench"
    helped = _run([str(script), "--help"], empty, env).stdout
    assert "method" in helped and "model" in helped, helped
    job = _run([str(script), "--cfg", "job"], empty, env).stdout
    assert "name: mose" in job and "name: smollm2-135m" in job, job

    ran = _run([str(script), "model=tiny-llama", "method=mose", "num_edits=1", "stats.n_tokens=2000",
                "logger.wandb.mode=disabled"], empty, env, timeout=300)
    (summary,) = empty.glob("outputs/*/*/summary.json")
    assert "Run directory: outputs/" in ran.stdout and "wandb" in ran.stdout.splitlines()[-1], ran.stdout
    assert "reliability" in summary.read_text()
    assert not (empty / "src").exists() and "demo set" in ran.stdout + ran.stderr
