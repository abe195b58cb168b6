"""Every setting typed and checked before anything runs (editbench/schema/, issue 25).

The table below is discovered from the composed config, not hand-listed: every numeric or list key
of every method gets a wrong type, a negative, a zero and (lists) an empty value. Each must be
accepted by the schema's documented rule or refused with one ConfigError naming key and value;
anything else (a traceback) fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields

import pytest
from omegaconf import OmegaConf

from editbench.api import to_overrides
from editbench.config import CONF_DIR, compose
from editbench.errors import ConfigError
from editbench.schema.check import _walk, validate
from editbench.schema.methods import METHODS as METHOD_SCHEMAS
from editbench.schema.methods import MoseConfig
from editbench.schema.rules import Rule
from editbench.schema.run import Config
from tests.conftest import REPO

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
BASE = ["model=tiny-llama"]  # 4 layers, known before loading (model.tiny.n_layers)


def leaves(node, prefix: str):
    """(dotted key, value) of every number or list under a plain config node."""
    for k, v in node.items():
        if isinstance(v, dict):
            yield from leaves(v, f"{prefix}{k}.")
        elif isinstance(v, list) or (isinstance(v, int | float) and not isinstance(v, bool)):
            yield f"{prefix}{k}", v


def same_shape(value, number):
    """`value` with every number replaced by `number`, e.g. [[10, 5]] -> [[-1, -1]]."""
    return [same_shape(v, number) for v in value] if isinstance(value, list) else number


def variants(value):
    """(case, new value, whether only the type is wrong)."""
    yield "wrong type", "abc", True
    if isinstance(value, list):
        yield "negative", same_shape(value, -1), False
        yield "zero", same_shape(value, 0), False
        yield "empty", [], False
    else:
        yield "negative", -5 if isinstance(value, int) else -5.0, False
        yield "zero", 0 if isinstance(value, int) else 0.0, False


def table() -> list[tuple[str, str, str, object, bool]]:
    rows = []
    for method in METHODS:
        cfg = OmegaConf.to_container(compose([*BASE, f"method={method}"]), resolve=True)
        for key, value in leaves(cfg["method"], "method."):
            rows += [(method, key, case, new, type_only) for case, new, type_only in variants(value)]
    return rows


TABLE = table()


def rule_of(cfg, key: str) -> Rule | None:
    found = [f for path, _, f in _walk(Config, OmegaConf.to_container(cfg, resolve=True), "")
             if path == key]
    assert found, f"{key} has no schema field"
    return found[0].metadata.get("rule")


def test_the_table_covers_every_method_and_is_large():
    assert {row[0] for row in TABLE} == set(METHOD_SCHEMAS) == set(METHODS)
    assert len(TABLE) >= 250, len(TABLE)


def test_every_numeric_or_list_method_key_has_a_documented_rule():
    for method in METHODS:
        cfg = compose([*BASE, f"method={method}"])
        for key, _ in leaves(OmegaConf.to_container(cfg.method, resolve=True), "method."):
            assert rule_of(cfg, key) is not None, f"{method}: {key} has no value rule"


@pytest.mark.parametrize(("method", "key", "case", "value", "type_only"), TABLE,
                         ids=[f"{m}-{k}-{c}" for m, k, c, _, _ in TABLE])
def test_bad_values_are_accepted_by_rule_or_refused_with_one_message(method, key, case, value, type_only):
    override = to_overrides({key: value})[0]
    try:
        cfg = compose([*BASE, f"method={method}", override])
    except ConfigError as err:  # refused while composing: the type
        assert key in str(err) and "\n" not in str(err)
        assert type_only, f"{override}: refused at composition: {err}"
        return
    assert not type_only, f"{override} composed although its type is wrong"
    rule = rule_of(cfg, key)
    typed = OmegaConf.to_container(cfg, resolve=True)
    for part in key.split("."):
        typed = typed[part]
    try:
        validate(cfg)
    except ConfigError as err:
        assert not rule.ok(typed, 4), f"{override} is allowed by '{rule.text}' but was refused: {err}"
        assert f"{key}={typed!r}" in str(err) and rule.text.replace("n_layers-1", "3") in str(err)
    else:
        assert rule.ok(typed, 4), f"{override} breaks '{rule.text}' but was accepted"


def test_top_level_and_group_keys_are_typed_and_checked():
    for override, words in [("batch_size=-2", "batch_size=-2 is out of range: must be >= 1"),
                            ("offset=-5", "offset=-5 is out of range"), ("eval_at=[0,5]", "eval_at=[0, 5]"),
                            ("eval_at=sometimes", "final, immediate"), ("model.dtype=float8", "model.dtype='float8'"),
                            ("stats.n_tokens=0", "stats.n_tokens=0"), ("downstream.every_k_steps=-1", "every_k_steps"),
                            ("logger.wandb.mode=loud", "offline, online, disabled")]:
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            validate(compose([*BASE, override]))
    for override, words in [("seed=1.5", "seed=1.5 is not an int"), ("threads=x", "threads='x' is not an int or null"),
                            ("method.layer_selection=[1]", "method.layer_selection"),
                            ("method.rotation=5", None), ("method.nope=1", "Key 'nope' not in 'MoseConfig'")]:
        if words is None:  # an int where a string is expected: OmegaConf converts it; the rule refuses it
            with pytest.raises(ConfigError, match="one of orthogonal, special_orthogonal"):
                validate(compose([*BASE, override]))
            continue
        with pytest.raises(ConfigError, match=words):
            compose([*BASE, override])


def test_layers_are_checked_against_the_models_depth_before_loading():
    with pytest.raises(ConfigError, match=r"candidate_layers=\[0, 7\] is out of range: must be a list of one or "
                                          r"more layer indices in 0..3"):
        validate(compose([*BASE, "method.candidate_layers=[0,7]"]))
    with pytest.raises(ConfigError, match=r"method.layers=\[4, 99\].*in 0..29"):  # SmolLM2: model.n_layers=30
        validate(compose(["method=memit", "method.layers=[4,99]"]))
    # Unknown depth (model.n_layers unset): only non-negative; the loaded model's depth is checked later.
    validate(compose(["method=memit", "method.layers=[4,99]", "model.n_layers=null"]))
    with pytest.raises(ConfigError, match="0..29"):
        validate(compose(["method=memit", "method.layers=[4,99]", "model.n_layers=null"]), n_layers=30)


def test_the_loaded_models_depth_is_checked_before_any_edit(tiny):
    from editbench.build import check_loaded

    check_loaded(compose(BASE), tiny)
    with pytest.raises(ConfigError, match="model.n_layers=5 but tiny-llama has 4 layers"):
        check_loaded(compose([*BASE, "model.n_layers=5"]), tiny)


def test_suspicious_values_warn_and_name_the_key():
    assert validate(compose(BASE)) == []
    for method in METHODS:  # every committed default and per-model value is quiet
        for model in ("tiny-llama", "smollm2-135m", "gemma3-270m", "llama3-8b"):
            assert validate(compose([f"model={model}", f"method={method}"])) == [], (method, model)
    (far,) = validate(compose([*BASE, "method.mom2_update_weight=1e9"]))
    assert "method.mom2_update_weight=1e+09 is more than 100x away" in far
    recorded = far.split("for this method (")[1].split(")")[0].split(", ")
    assert {"10", "1000"} <= set(recorded)  # mose.yaml's default and mose_smollm2-135m.yaml's λ
    (one,) = validate(compose([*BASE, "method.selection_steps=1"]))
    assert one.startswith("method.selection_steps=1 is below 2")
    with pytest.raises(ConfigError, match=r"method.layers=\[4, 5\] is out of range: must be a list of 1 layer"):
        validate(compose(["method=rome", "method.layers=[4,5]"]))
    (few,) = validate(compose(["method=rome", "method.value.steps=2"]))
    assert few.startswith("method.value.steps=2 is below 5")


def test_a_warning_is_logged_once_and_recorded_in_the_summary(tmp_path, data_dir, isolated_cache, caplog):
    from editbench.runner import run

    cfg = compose([*BASE, "method.selection_steps=1", "num_edits=1", "stats.n_tokens=2000",
                   "logger.wandb.mode=disabled", f"data_dir={data_dir}"])
    summary = run(cfg, tmp_path)
    assert summary["config_warnings"] == [w for w in validate(cfg)] and len(summary["config_warnings"]) == 1
    assert [r.message for r in caplog.records].count(f"config: {summary['config_warnings'][0]}") == 1


def test_keys_other_branches_add_are_optional_enums():
    cfg = compose(BASE)
    assert cfg.method.rotation == "orthogonal"
    assert compose(["method=mose_oft"]).method.coft_projection == "per_block"
    validate(compose([*BASE, "method.rotation=special_orthogonal"]))
    with pytest.raises(ConfigError, match="method.coft_projection='blocks'.*one of per_block, stack"):
        validate(compose(["method=mose_oft", "method.coft_projection=blocks"]))
    assert {f.name for f in fields(MoseConfig)} >= {"rotation", "selection_steps"}


def test_a_run_saved_before_a_key_existed_still_resumes(tmp_path):
    from editbench import checkpoint

    cfg = compose(BASE)
    checkpoint.check_config(tmp_path, cfg)
    saved = OmegaConf.load(tmp_path / checkpoint.RUN_CONFIG)
    del saved.method["rotation"]  # as written before the key existed
    OmegaConf.save(saved, tmp_path / checkpoint.RUN_CONFIG)
    checkpoint.check_config(tmp_path, cfg)  # at its default: the same computation
    with pytest.raises(ConfigError, match=r"other settings \(method.rotation\)"):
        checkpoint.check_config(tmp_path, compose([*BASE, "method.rotation=special_orthogonal"]))


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "editbench", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)


@pytest.mark.parametrize(("args", "says"), [
    (["method.mom2_update_weight=abc"], "method.mom2_update_weight='abc' is not a float"),
    (["method=mose", "method.candidate_layers=[]"], "method.candidate_layers=[] is out of range: must be a list of one"),
    (["method.mom2_update_weight=-5", "num_edits=1"], "method.mom2_update_weight=-5.0 is out of range: must be > 0"),
    (["method=rome", "method.value.steps=0", "num_edits=1"], "method.value.steps=0 is out of range: must be >= 1"),
    (["-m", "method=mose,rome", "method.value.steps=5,0"], "sweep cell 2 of 4 (method=mose method.value.steps=0"),
])
def test_the_cli_refuses_with_one_line_and_exit_2(tmp_path, args, says):
    out = cli(*args, f"hydra.run.dir={tmp_path}", f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip() == f"editbench: error: {out.stderr.strip().removeprefix('editbench: error: ')}"
    assert says in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # refused before anything ran or was written
