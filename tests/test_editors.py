"""The Editor base: the non-finite guard and the registry."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from editbench.editors.base import REGISTRY
from editbench.errors import ConfigError, NumericalError
from editbench.locate.context import EditContext
from editbench.methods import build_editor


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e39])  # 1e39 overflows float32
def test_nonfinite_update_is_rejected_and_weights_stay(tiny, bad):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]])
    editor = build_editor("ft", ctx, OmegaConf.create({"layer": 1, "on_nonfinite": "skip"}))
    before = tiny.spec.get_weight(tiny.model, 1).clone()
    new = before.double().clone()
    new[0, 0] = bad
    assert editor.write_weight(1, new) is False
    assert torch.equal(tiny.spec.get_weight(tiny.model, 1), before)
    assert editor.take_rejected() == [1] and editor.take_rejected() == []
    strict = build_editor("ft", ctx, OmegaConf.create({"layer": 1, "on_nonfinite": "abort"}))
    with pytest.raises(NumericalError, match="non-finite"):
        strict.write_weight(1, new)
    assert torch.equal(tiny.spec.get_weight(tiny.model, 1), before)


def test_unknown_method_names_the_choices(tiny):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]])
    with pytest.raises(ConfigError, match="unknown method 'nope'.*mose"):
        build_editor("nope", ctx, OmegaConf.create({}))
    assert {"ft", "mose", "mose_oft"} <= set(REGISTRY)


def test_guard_spread_residual_warns_on_growth_but_not_at_rounding_level():
    """spread_residual_grew: a residual that grows warns; one at rounding level (z* already met, the value
    optimisation stopped at once: 3e-5 -> 3.7e-5, seen on SmolLM2/ZsRE) does not (guard.residual_floor)."""
    from editbench.guard import GuardParams, step_warnings

    def record(before: float, after: float) -> dict:
        return {"v": [{"z_residual": [[before], [after]], "v_loss_final": [0.01], "v_loss_initial": [1.0],
                       "v_steps": 3}]}

    params = GuardParams()
    codes = lambda r: [w["code"] for w in step_warnings(r, {}, params, early_stop=0.05)]  # noqa: E731
    assert codes(record(10.0, 12.0)) == ["spread_residual_grew"]
    assert codes(record(10.0, 8.0)) == []
    assert codes(record(3.1e-5, 3.7e-5)) == []
    assert [w["code"] for w in step_warnings(record(3.1e-5, 3.7e-5), {}, GuardParams(residual_floor=0.0),
                                             early_stop=0.05)] == ["spread_residual_grew"]
