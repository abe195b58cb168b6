"""experiments/mose/capacity.py: closed-form MOSE / MEMIT / AlphaEdit on a linear memory (issue 20)."""

from __future__ import annotations

import json

import pytest
import torch

from baselines.alphaedit import alphaedit_delta, null_space_projector
from baselines.memit import memit_delta
from experiments.mose import capacity as cap

F64 = torch.float64


def memory(d: int = 32, n: int = 50, seed: int = 0, **kw) -> cap.Memory:
    g = torch.Generator().manual_seed(seed)
    W0, c = cap.synthetic_w0_c0(d, round(d * 8 / 3), "power:0.5", "power:1.0", 100.0, g)
    keys, targets = cap.draw_edits(W0, c, n, kw.get("targets", "shift"), kw.get("change", 1.0), g)
    return cap.Memory(W0, c, keys, targets)


def test_fast_memit_step_equals_the_projects_memit_delta():
    mem = memory()
    ed = cap.MemitEditor(mem, lam=50.0)
    W = mem.W0.clone()
    for lo in (0, 3, 5):  # batches of 3, 2, 4 edits
        K, V = mem.keys[lo : lo + 3 + (lo == 5)], mem.targets[lo : lo + 3 + (lo == 5)]
        W = W + memit_delta(K, V - K @ W.T, torch.diag(mem.c), 50.0)
        ed.step(K, V)
        torch.testing.assert_close(ed.W, W, rtol=1e-9, atol=1e-9)


def test_fast_alphaedit_step_equals_the_projects_alphaedit_delta():
    mem = memory()
    tau = float(torch.quantile(mem.c, 0.7))
    ed = cap.AlphaEditor(mem, alpha=10.0, tau=tau)
    P = null_space_projector(torch.diag(mem.c), tau)
    torch.testing.assert_close(P, torch.diag((mem.c < tau).double()))  # P is the coordinate mask
    W, Cp = mem.W0.clone(), torch.zeros(mem.m, mem.m, dtype=F64)
    for lo, hi in ((0, 1), (1, 4), (4, 6), (6, 7)):
        K, V = mem.keys[lo:hi], mem.targets[lo:hi]
        W = W + alphaedit_delta(K, V - K @ W.T, P, Cp, 10.0, dtype=F64)
        Cp = Cp + K.T @ K
        ed.step(K, V)
        torch.testing.assert_close(ed.W, W, rtol=1e-8, atol=1e-9)


def test_one_edit_is_recalled_by_all_three_at_small_regularisation():
    mem = memory(n=1)
    for ed in (cap.MoseEditor(mem, lam=1e-3), cap.MemitEditor(mem, lam=1e-3),
               cap.AlphaEditor(mem, alpha=1e-3, tau=float(torch.quantile(mem.c, 0.7)))):
        assert ed.delta_energy() == 0.0  # N = 0: nothing changed
        ed.step(mem.keys, mem.targets)
        rec = cap.recall_measures(ed.outputs(mem.keys), mem.old, mem.targets, 10, torch.Generator())
        assert rec["recall"] == 1.0, type(ed).__name__
        assert ed.delta_energy() > 0


def test_mose_keeps_the_singular_values_and_its_procrustes_step_is_the_papers():
    mem = memory(n=50)
    ed = cap.MoseEditor(mem, lam=1.0)
    for i in range(0, 50, 5):
        ed.step(mem.keys[i : i + 5], mem.targets[i : i + 5])
    W = ed.Q @ mem.W0
    torch.testing.assert_close(torch.linalg.svdvals(W), torch.linalg.svdvals(mem.W0), rtol=1e-10, atol=1e-12)
    assert ed.extra()["orthogonality"] < 1e-10
    assert float((W - mem.W0).norm()) > 0.1 * float(mem.W0.norm())  # it did move
    # the step is argmin_R ‖R A − B‖ (eq. 18) with A = [√λ W K0, W K_E], B = [√λ W K0, V_E], K0 K0ᵀ = C0
    k, v = mem.keys[:2], mem.targets[:2]
    Q0 = ed.Q.clone()
    ed.step(k, v)
    R = ed.Q @ Q0.T
    K0 = torch.diag(mem.c.sqrt())  # any K0 with K0 K0ᵀ = C0
    Wc = Q0 @ mem.W0
    A = torch.cat([Wc @ K0, Wc @ k.T], dim=1)
    B = torch.cat([Wc @ K0, v.T], dim=1)
    best = float((R @ A - B).norm())
    for seed in range(20):
        q, _ = torch.linalg.qr(torch.randn(mem.d, mem.d, generator=torch.Generator().manual_seed(seed), dtype=F64))
        assert best <= float((q @ R @ A - B).norm())


def test_mose_memory_variant_holds_earlier_edits_better():
    mem = memory(n=40, targets="swap")
    plain, held = cap.MoseEditor(mem, lam=0.5), cap.MoseEditor(mem, lam=0.5, memory_weight=10.0)
    for i in range(40):
        plain.step(mem.keys[i : i + 1], mem.targets[i : i + 1])
        held.step(mem.keys[i : i + 1], mem.targets[i : i + 1])
    first = slice(0, 20)

    def delivered(ed):
        return cap.recall_measures(ed.outputs(mem.keys[first]), mem.old[first], mem.targets[first], 0,
                                   torch.Generator())["delivered"]

    assert delivered(held) > delivered(plain)


def test_run_writes_results_report_and_figure(tmp_path):
    s = cap.Settings(dims=[24, 32], max_edits=12, grid=[0, 1, 4, 12], batch="0.08d", mose_lams=[1.0, 100.0],
                     mose_memory=1.0, mose_anchor="original", c0_trace=100.0,
                     distractors=5)
    rows = cap.run(s, tmp_path)
    methods = {r["method"] for r in rows}
    assert methods == {"mose λ=1", "mose λ=100", "mose+edits λ=1 μ=1", "mose+edits λ=100 μ=1", "mose W0-anchor λ=1", "mose W0-anchor λ=100",
                       "memit λ=5000",
                       "alphaedit α=10"}
    assert len(rows) == 2 * len(methods) * 4
    assert {(r["d"], r["batch"]) for r in rows} == {(24, 2), (32, 3)}  # "0.08d": the same b/d at each width
    assert (cap.batch_spec("0.08d"), cap.batch_spec("5")) == ("0.08d", 5)
    with pytest.raises(ValueError):
        cap.batch_spec("tend")
    for r in rows:
        if r["edits"] == 0:
            assert r["preservation_error"] == 0.0
        else:
            assert 0.0 <= r["recall"] <= 1.0 and r["preservation_error"] >= 0.0
            # the median stacked share is the θ at which half the edits are kept
            assert (r["kept@0.5"] >= 0.5) if r["stacked_median"] >= 0.5 else (r["kept@0.5"] <= 0.5)
            assert r["kept@0.3"] >= r["kept@0.4"] >= r["kept@0.5"] >= r["kept@0.7"]
    # a stronger anchor moves W less
    at = {(r["method"], r["d"]): r for r in rows if r["edits"] == 12}
    assert at[("mose λ=100", 32)]["preservation_error"] < at[("mose λ=1", 32)]["preservation_error"]
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "report.png").stat().st_size > 1000
    assert (tmp_path / "widths.png").stat().st_size > 1000  # one panel per method, one curve per d
    report = (tmp_path / "report.md").read_text()
    assert "## By width" in report and "| memit λ=5000 | 32 | 85 | 3 |" in report
    # the report and figures regenerate from results.csv + settings.json alone (--from-results), identically
    again = tmp_path / "again"
    cap.write_outputs(cap.read_results(tmp_path / "results.csv"), cap.Settings(**json.loads(
        (tmp_path / "settings.json").read_text())), again)
    assert (again / "report.md").read_text() == report
    assert (again / "results.csv").read_text() == (tmp_path / "results.csv").read_text()
    assert "recall" in (tmp_path / "report.md").read_text()


def test_real_memory_file_is_rotated_into_c0s_eigenbasis(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    W0 = torch.randn(8, 20, generator=g, dtype=F64)
    X = torch.randn(100, 20, generator=g, dtype=F64)
    C0 = X.T @ X / 100
    save_file({"W0": W0, "C0": C0}, str(tmp_path / "m.safetensors"))
    W, c = cap.real_w0_c0(tmp_path / "m.safetensors")
    # same held-out output energy: tr(W0 C0 W0ᵀ) = tr(W diag(c) Wᵀ), and the same singular values
    assert float(((W * c) @ W.T).trace()) == pytest.approx(float((W0 @ C0 @ W0.T).trace()), rel=1e-10)
    torch.testing.assert_close(torch.linalg.svdvals(W), torch.linalg.svdvals(W0))
    rows = cap.run(cap.Settings(max_edits=5, grid=[0, 5], real=str(tmp_path / "m.safetensors"), distractors=2))
    assert {r["d"] for r in rows} == {8}


def test_w0_anchored_mose_pulls_the_drift_back():
    mem = memory(n=60, targets="swap")
    prev, orig = cap.MoseEditor(mem, lam=2.0), cap.MoseEditor(mem, lam=2.0, anchor="original")
    for i in range(60):
        prev.step(mem.keys[i : i + 1], mem.targets[i : i + 1])
        orig.step(mem.keys[i : i + 1], mem.targets[i : i + 1])
    assert orig.delta_energy() < prev.delta_energy()
    torch.testing.assert_close(torch.linalg.svdvals(orig.Q @ mem.W0), torch.linalg.svdvals(mem.W0))
    with pytest.raises(ValueError, match="anchor"):
        cap.MoseEditor(mem, lam=1.0, anchor="W0")


# --- the calibrated inputs: measured changes, real keys, shaped memories (issue 20, capacity-real) ----------


def test_measured_targets_carry_the_along_and_across_ratios():
    mem = memory(n=1)
    changes = torch.tensor([[-0.2, 1.5], [0.05, 3.0]], dtype=F64)
    keys, targets = cap.draw_edits(mem.W0, mem.c, 40, "measured", 1.0, torch.Generator().manual_seed(3),
                                   changes=changes)
    old = keys @ mem.W0.T
    w = old.norm(dim=1, keepdim=True)
    delta = (targets - old) / w
    along = (delta * old / w).sum(dim=1)
    across = (delta - along[:, None] * old / w).norm(dim=1)
    got = torch.stack([along, across], dim=1)
    # every edit's (along, across) is one of the measured rows, and both rows are used
    match = (got[:, None] - changes[None]).abs().amax(dim=2) < 1e-9
    assert bool(match.any(dim=1).all()) and bool(match.any(dim=0).all())
    with pytest.raises(ValueError, match="--changes"):
        cap.draw_edits(mem.W0, mem.c, 2, "measured", 1.0, torch.Generator())


def test_changes_snapshot_round_trips_a_mose_steps_file(tmp_path):
    import json

    geo = {"case_ids": ["7", "8"], "output_norm": [2.0, 4.0], "change_norm": [3.0, 5.0],
           "change_along_output": [-1.0, 0.0], "change_across_output": [2.8284271247461903, 5.0],
           "realised_along_change": [1.5, 1.0]}
    steps = tmp_path / "steps.jsonl"
    steps.write_text(json.dumps({"step": 1, "edit_geometry": {"3": geo}}) + "\n" + json.dumps({"step": 2}) + "\n")
    csv_path = cap.write_changes(steps, tmp_path / "changes.csv")
    want = torch.tensor([[-0.5, 2.8284271247461903 / 2], [0.0, 1.25]], dtype=F64)
    torch.testing.assert_close(cap.measured_changes(steps), want)
    torch.testing.assert_close(cap.measured_changes(csv_path), want)
    assert cap.change_records(steps)[0]["realised_share"] == 0.5
    (tmp_path / "empty.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    with pytest.raises(ValueError, match="edit_geometry"):
        cap.write_changes(tmp_path / "empty.jsonl", tmp_path / "x.csv")


def test_stacked_share_is_the_spreads_remainder():
    f = torch.tensor([0.0, 0.4, 1.0, 1.7, -0.3], dtype=F64)
    torch.testing.assert_close(cap.stacked_share(f, 1), torch.tensor([0.0, 0.4, 1.0, 1.0, 0.0], dtype=F64))
    three = cap.stacked_share(f, 3)
    assert float(three[1]) == pytest.approx(1 - 0.6 * 0.8 * (1 - 0.4 / 3))
    assert float(three[2]) == 1.0 and bool((cap.stacked_share(f, 5) >= three).all())


def test_lambda_specs_scale_with_width():
    assert cap.scaled("1000@576", 1152) == 2000.0
    assert cap.scaled(15000.0, 4096) == 15000.0
    assert cap.label("1000@576") == "1000@576" and cap.label(5000.0) == "5000"


def test_real_keys_and_the_shaped_memory(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(2)
    W0 = torch.randn(8, 20, generator=g, dtype=F64) * torch.linspace(3, 0.1, 20, dtype=F64)
    X = torch.randn(200, 20, generator=g, dtype=F64) * torch.linspace(2, 0.2, 20, dtype=F64)
    C0 = X.T @ X / 200
    K = 3 * torch.randn(6, 20, generator=g, dtype=F64) @ torch.linalg.cholesky(C0).T
    save_file({"W0": W0, "C0": C0, "K": K}, str(tmp_path / "m.safetensors"))
    W, c, Kr = cap.load_real(tmp_path / "m.safetensors")
    torch.testing.assert_close(Kr @ W.T, K @ W0.T)  # rotating keys and W0 together changes no output
    keys, _ = cap.draw_edits(W, c, 4, "shift", 1.0, g, keys=Kr)
    torch.testing.assert_close(keys, Kr[:4])
    with pytest.raises(ValueError, match="--n-keys"):
        cap.draw_edits(W, c, 7, "shift", 1.0, g, keys=Kr)
    # keys drawn 3× larger than C0's tokens: their output energy is ≈ 9× the average (6 keys: loose)
    assert 2.0 < cap.real_key_scale(tmp_path / "m.safetensors") < 5.0
    stats = cap.key_statistics(W, c, torch.randn(4000, 20, generator=g, dtype=F64) * c.sqrt())
    assert stats["whitened"] == pytest.approx(1.0, abs=0.05) and stats["output2"] == pytest.approx(1.0, abs=0.1)
    # the shaped memory at the reference's own size has its spectra; at twice the size, the same shape
    Ws, cs = cap.shaped_w0_c0(8, 20, tmp_path / "m.safetensors", g)
    torch.testing.assert_close(torch.linalg.svdvals(Ws), torch.linalg.svdvals(W0))
    torch.testing.assert_close(cs, c.flip(0))
    W2, c2 = cap.shaped_w0_c0(16, 40, tmp_path / "m.safetensors", g)
    assert float(c2.mean()) == pytest.approx(float(c.mean()))
    s2 = torch.linalg.svdvals(W2)
    assert float(s2[0]) == pytest.approx(float(torch.linalg.svdvals(W0)[0]))
    rows = cap.run(cap.Settings(dims=[16], max_edits=4, grid=[0, 4], shape=str(tmp_path / "m.safetensors"),
                                key_scale="auto", mose_lams=["1@8"], memit_lam="50@20", null_threshold=0.05,
                                distractors=2))
    assert {r["method"] for r in rows} == {"mose λ=1@8", "memit λ=50@20", "alphaedit α=10"}
    assert all(r["key_scale"] > 1.0 for r in rows)
    real = cap.run(cap.Settings(max_edits=5, grid=[0, 5], real=str(tmp_path / "m.safetensors"), keys="real",
                                key_scale="auto", distractors=2, methods=["memit"]))
    assert real[-1]["key_scale"] == 1.0 and 0.0 <= real[-1]["kept@0.5"] <= 1.0


@pytest.mark.smollm2
def test_exported_memory_is_the_models_down_projection_and_its_inputs(tmp_path, run_data):
    from safetensors.torch import load_file

    from experiments.mose.export_memory import export

    meta = export(2, 3, tmp_path / "mem.safetensors", allow_compute=True,
                  overrides=("stats.n_tokens=300", f"data_dir={run_data}"))
    t = load_file(str(tmp_path / "mem.safetensors"))
    assert (meta["d"], meta["m"]) == (576, 1536) and t["W0"].shape == (576, 1536) and t["K"].shape == (3, 1536)
    C0 = t["C0"]
    torch.testing.assert_close(C0, C0.T)
    assert float(torch.linalg.eigvalsh(C0).min()) > -1e-6 * float(C0.diagonal().max())
    # orientation: the module applied to the keys is W0 k (out × in, as capacity.py expects)
    from editbench.models.loading import load_model
    from tests.conftest import SMOLLM2_CFG

    lm = load_model(SMOLLM2_CFG)
    with torch.no_grad():
        out = lm.spec.down_proj(lm.model, 2)(t["K"].float())
    torch.testing.assert_close(out.double(), t["K"] @ t["W0"].T, rtol=1e-4, atol=1e-4)
