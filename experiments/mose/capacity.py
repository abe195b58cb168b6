"""How many sequential edits a linear memory keeps: MOSE vs MEMIT vs AlphaEdit in closed form (issue 20).

No language model: one matrix W0 (d×m, the down projection's shape, m = d·8/3) with a given singular
value profile, keys k ~ N(0, C0) with C0 from a given spectrum, and a stream of N edits (k_i, v_i).
Each method edits W sequentially, one step per `--batch` edits, with the residual taken on the
current W (as in the LM, where V_E = W k + the spread share, D2):

  MOSE (paper eq. 17-20, W ← R W):  M = λ·W C0 Wᵀ + V_E (W K_E)ᵀ,  R = U Vᵀ for U Σ Vᵀ = svd(M)
        (`procrustes` from editbench.editors.mose; W = Q_t W0 with Q_t = R_t Q_{t−1}, sequential
        anchor W_{t−1}, D3). `--mose-memory μ` is a variant that also holds past edits' outputs:
        M += μ·Σ_p (W k_p)(W k_p)ᵀ, i.e. K0 in eq. 17 includes the keys of earlier edits;
        `--mose-anchor original` another: B's first block is √λ W0 K0 (eq. 17 read literally, the
        outputs of the unedited W0), so M = λ·W0 C0 Wᵀ + V_E (W K_E)ᵀ pulls the drift back.
  MEMIT (Meng et al. 2023 eq. 14, plain sequential: no memory of earlier edits):
        ΔW = R Kᵀ (λC0 + K Kᵀ)⁻¹   (baselines/memit.py `memit_delta`)
  AlphaEdit (Fang et al. 2025 eq. 14): ΔW = R Kᵀ P (K_p K_pᵀ P + K Kᵀ P + α I)⁻¹, P the projector on
        C0's eigenvectors with eigenvalue < τ, K_p the keys of all earlier edits
        (baselines/alphaedit.py `alphaedit_delta`, `null_space_projector`).

Speed: everything runs in C0's eigenbasis (keys' coordinates rotated so that C0 = diag(c); W0 is
rotated with them, which changes no output W k). There λC0 is diagonal, so MEMIT's m×m solve is
Woodbury on an n×n system, and P is a coordinate mask, so AlphaEdit's solve lives on the null
coordinates with (C_p + αI)⁻¹ kept up to date by the same Woodbury step. Both are checked against
the project's `memit_delta` / `alphaedit_delta` in tests/test_capacity.py. MOSE's d×d SVD per step
is the cost (`--batch` edits per step cut it).

Measures after t edits (on a coarse grid of t), float64 throughout:
  recall      fraction of the t edits whose output W k_i is, by cosine, closer to its new value v_i
              than to its old value W0 k_i and to the targets of `--distractors` other edits (a
              nearest-candidate readout: the memory "answers" the new fact)
  recall_l2   the same with Euclidean distance (a rotation cannot change ‖W k‖, so this is stricter
              for MOSE when ‖v‖ ≠ ‖W0 k‖)
  delivered   mean over edits of (W k_i − W0 k_i)·(v_i − W0 k_i) / ‖v_i − W0 k_i‖² (1: all of it)
  preservation_error  √(E‖(W − W0) k‖² / E‖W0 k‖²) for held-out keys k ~ N(0, C0), exactly (trace form)
Targets: `shift` (default) v = W0 k + δ with ‖δ‖ = --change·‖W0 k‖ in a random direction; `swap` v =
W0 k' for an unrelated key k' (same norm statistics: a change a rotation can deliver in full).

  PYTHONPATH=src:. python experiments/mose/capacity.py --quick --out experiments/mose/capacity   # d ≤ 1024, N ≤ 500
      (≈ 8 min on one core, MOSE's SVDs at d = 1024 are 7/8 of it; add --batch 10 for ≈ 1 min, batch-sequential)
  PYTHONPATH=src:. python experiments/mose/capacity.py --out experiments/mose/capacity-full \\
      --dims 576,1024,2048,4096 --max-edits 4000 --batch 1                     # full (hours on one core at d = 4096)
  ... --real smollm2-layer8.safetensors   # tensors "W0" (d×m) and "C0" (m×m, mean second moment): real W0 / C0
Calibrated on the real model (issue 20; experiments/mose/run.sh capacity-real, README): export_memory.py
writes the --real file (+ real keys "K", used by --keys real); --targets measured --changes takes the
along / across split of a MOSE run's edit_geometry; --shape FILE gives synthetic memories the real
σ(W0) / eig(C0) shapes at any d; --key-scale auto matches the real keys' ‖W0 k‖²/E‖W0 k‖²; kept@θ reads
an edit as kept when its share, stacked over the LM's spread layers (`stacked_share`), reaches θ.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from editbench.editors.mose import orthogonality_error, procrustes

F64 = torch.float64


# --- the memory ------------------------------------------------------------------------------------------


@dataclass
class Memory:
    """W0 (d, m) and C0 = diag(c) in C0's eigenbasis; keys K (N, m), targets V (N, d), held-out stats."""

    W0: torch.Tensor
    c: torch.Tensor  # C0's eigenvalues, (m,)
    keys: torch.Tensor
    targets: torch.Tensor

    @property
    def d(self) -> int:
        return self.W0.shape[0]

    @property
    def m(self) -> int:
        return self.W0.shape[1]

    @property
    def old(self) -> torch.Tensor:
        """W0 k_i, (N, d)."""
        return self.keys @ self.W0.T


def profile(spec: str, n: int) -> torch.Tensor:
    """`power:a` → i^−a (i = 1..n), `flat` → 1, `exp:a` → e^{−a·i/n}; largest value 1."""
    i = torch.arange(1, n + 1, dtype=F64)
    kind, _, arg = spec.partition(":")
    if kind == "power":
        return i ** -float(arg)
    if kind == "exp":
        return torch.exp(-float(arg) * (i - 1) / n)
    if kind == "flat":
        return torch.ones(n, dtype=F64)
    raise ValueError(f"unknown spectrum {spec!r}: use power:A, exp:A or flat")


def orthonormal_columns(rows: int, cols: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=g, dtype=F64))
    return q * torch.sign(torch.diagonal(r))  # Haar-distributed


def synthetic_w0_c0(d: int, m: int, w_spectrum: str, c0_spectrum: str, c0_trace: float,
                    g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """W0 = U diag(σ) Vᵀ with random U (d×d), V (m×d); C0 = diag(c) with tr C0 = c0_trace.

    C0's eigenbasis is the coordinate basis; W0's right singular vectors are random in it.
    """
    sigma = profile(w_spectrum, d)
    U, V = orthonormal_columns(d, d, g), orthonormal_columns(m, d, g)
    c = profile(c0_spectrum, m)
    return (U * sigma) @ V.T, c * (c0_trace / c.sum())


def load_real(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """W0, C0's eigenvalues and (if stored) real keys K from a safetensors file (export_memory.py),
    W0 and K rotated into C0's eigenbasis (C0 = Q diag(c) Qᵀ → W0 Q, K Q): no output W k changes."""
    from safetensors.torch import load_file

    t = load_file(str(path))
    W0, C0 = t["W0"].to(F64), t["C0"].to(F64)
    if W0.shape[1] != C0.shape[0]:
        raise ValueError(f"{path}: W0 {tuple(W0.shape)} must be (d, m) with C0 (m, m) = {tuple(C0.shape)}")
    c, Q = torch.linalg.eigh((C0 + C0.T) / 2)
    K = t["K"].to(F64) @ Q if "K" in t else None
    return W0 @ Q, c.clamp_min(0.0), K


def real_w0_c0(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """W0 and C0 from a safetensors file, W0 rotated into C0's eigenbasis (C0 = Q diag(c) Qᵀ → W0 Q)."""
    W0, c, _ = load_real(path)
    return W0, c


def resample(values: torch.Tensor, n: int) -> torch.Tensor:
    """A sorted profile (largest first) carried to n points by linear interpolation in relative rank i/n."""
    src = torch.linspace(0.0, 1.0, len(values), dtype=F64)
    dst = torch.linspace(0.0, 1.0, n, dtype=F64)
    j = torch.searchsorted(src, dst).clamp(1, len(values) - 1)
    w = (dst - src[j - 1]) / (src[j] - src[j - 1])
    return values[j - 1] * (1 - w) + values[j] * w


def shaped_w0_c0(d: int, m: int, reference: Path, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic memory with the reference's singular-value shape of W0 and eigenvalue shape of C0.

    σ(W0) and eig(C0) are the reference's profiles resampled to d and m values (relative rank), C0
    scaled so that the mean eigenvalue (the per-coordinate key energy, tr C0 / m) is the reference's:
    a real FFN's key coordinates keep their scale as m grows. W0's overall scale changes no measure.
    """
    W_ref, c_ref, _ = load_real(reference)
    sigma = resample(torch.linalg.svdvals(W_ref), d)
    c = resample(c_ref.flip(0), m)
    c = c * (c_ref.mean() / c.mean())
    U, V = orthonormal_columns(d, d, g), orthonormal_columns(m, d, g)
    return (U * sigma) @ V.T, c


def change_records(steps: Path) -> list[dict]:
    """One record per (edit, layer) of a MOSE run's steps.jsonl `edit_geometry`, ratios to ‖W k‖."""
    out = []
    for line in steps.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        for layer, geo in record.get("edit_geometry", {}).items():
            for i, case in enumerate(geo["case_ids"]):
                w, change = geo["output_norm"][i], geo["change_norm"][i]
                out.append({"step": record["step"], "case_id": case, "layer": int(layer), "output_norm": w,
                            "change_norm": change, "along_ratio": geo["change_along_output"][i] / w,
                            "across_ratio": geo["change_across_output"][i] / w,
                            "realised_share": geo["realised_along_change"][i] / change})
    return out


def write_changes(steps: Path, out: Path) -> Path:
    """Snapshot a (possibly still running) MOSE run's requested changes as CSV (the file `--changes` reads)."""
    records = change_records(steps)
    if not records:
        raise ValueError(f"{steps} has no edit_geometry records: give a MOSE run's steps.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return out


def measured_changes(path: Path) -> torch.Tensor:
    """(n, 2) requested changes as (along, across) / ‖W k‖, one row per (edit, layer).

    From a MOSE run's steps.jsonl (`edit_geometry`: change_along_output, change_across_output,
    output_norm) or a CSV with columns along_ratio, across_ratio (the snapshot `write_changes` writes).
    """
    if path.suffix == ".csv":
        with path.open() as f:
            rows = [(float(r["along_ratio"]), float(r["across_ratio"])) for r in csv.DictReader(f)]
    else:
        rows = [(r["along_ratio"], r["across_ratio"]) for r in change_records(path)]
    if not rows:
        raise ValueError(f"{path} has no requested changes: give a MOSE steps.jsonl with edit_geometry records "
                         "or a CSV with along_ratio, across_ratio")
    return torch.tensor(rows, dtype=F64)


def draw_edits(W0: torch.Tensor, c: torch.Tensor, n: int, targets: str, change: float,
               g: torch.Generator, key_scale: float = 1.0, changes: torch.Tensor | None = None,
               keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n keys k = key_scale·N(0, diag(c)) (or the first n of `keys`) and their targets (module docstring).

    key_scale > 1 makes the edited keys larger than the held-out ones (a subject's last token often
    has a larger key than the average token): every method's regulariser then weighs less.
    targets = "measured": v = W0 k + ‖W0 k‖·(a ŵ + b u), (a, b) a row of `changes` drawn with
    replacement, ŵ = W0 k/‖W0 k‖, u a random unit vector ⟂ ŵ (the real along / across split).
    """
    if keys is not None:
        if len(keys) < n:
            raise ValueError(f"{n} edits asked but the memory file holds {len(keys)} real keys: lower --max-edits "
                             "or export more with export_memory.py --n-keys")
        keys = key_scale * keys[:n]
    else:
        keys = key_scale * torch.randn(n, c.shape[0], generator=g, dtype=F64) * c.sqrt()
    old = keys @ W0.T
    if targets == "swap":
        other = torch.randn(n, c.shape[0], generator=g, dtype=F64) * c.sqrt()
        return keys, other @ W0.T
    direction = torch.randn(n, W0.shape[0], generator=g, dtype=F64)
    if targets == "measured":
        if changes is None:
            raise ValueError("targets=measured needs --changes (a MOSE steps.jsonl or its CSV snapshot)")
        ab = changes[torch.randint(0, len(changes), (n,), generator=g)]
        w_hat = old / old.norm(dim=1, keepdim=True)
        across = direction - (direction * w_hat).sum(dim=1, keepdim=True) * w_hat
        across = across / across.norm(dim=1, keepdim=True)
        return keys, old + old.norm(dim=1, keepdim=True) * (ab[:, :1] * w_hat + ab[:, 1:] * across)
    if targets != "shift":
        raise ValueError(f"unknown targets {targets!r}: use shift, swap or measured")
    direction = direction / direction.norm(dim=1, keepdim=True)
    return keys, old + change * old.norm(dim=1, keepdim=True) * direction


# --- the three editors (state + one sequential step) -------------------------------------------------------


class MoseEditor:
    """W = Q W0; one Procrustes step per batch (eq. 19-20) against λ W C0 Wᵀ (+ μ past edits' outputs)."""

    def __init__(self, mem: Memory, lam: float, memory_weight: float = 0.0, anchor: str = "previous") -> None:
        if anchor not in ("previous", "original"):
            raise ValueError(f"unknown anchor {anchor!r}: use previous (D3) or original")
        self.mem, self.lam, self.mu, self.anchor = mem, lam, memory_weight, anchor
        self.Q = torch.eye(mem.d, dtype=F64)
        self.G0 = (mem.W0 * mem.c) @ mem.W0.T  # W0 C0 W0ᵀ, (d, d)
        self.G_edits = torch.zeros(mem.d, mem.d, dtype=F64)  # Σ_p (W k_p)(W k_p)ᵀ in the current frame

    def outputs(self, keys: torch.Tensor) -> torch.Tensor:
        return keys @ self.mem.W0.T @ self.Q.T

    def step(self, keys: torch.Tensor, targets: torch.Tensor) -> None:
        w = self.outputs(keys)  # W K_E as rows, (n, d)
        if self.anchor == "previous":  # B Aᵀ with A = [√λ W K0, W K_E], B = [√λ W K0, V_E]: λ W C0 Wᵀ + V_E (W K_E)ᵀ
            M = self.lam * self.Q @ self.G0 @ self.Q.T + targets.T @ w
        else:  # B = [√λ W0 K0, V_E]: λ W0 C0 Wᵀ + V_E (W K_E)ᵀ, with W = Q W0
            M = self.lam * self.G0 @ self.Q.T + targets.T @ w
        if self.mu:
            M = M + self.mu * self.G_edits
        R = procrustes(M)
        self.Q = R @ self.Q
        if self.mu:
            w_new = w @ R.T
            self.G_edits = R @ self.G_edits @ R.T + w_new.T @ w_new

    def delta_energy(self) -> float:
        """E‖(W − W0) k‖² = tr((Q − I) G0 (Q − I)ᵀ)."""
        D = self.Q - torch.eye(self.mem.d, dtype=F64)
        return float(torch.einsum("ij,jk,ik->", D, self.G0, D))

    def extra(self) -> dict:
        return {"orthogonality": orthogonality_error(self.Q)}


class MemitEditor:
    """Plain sequential MEMIT, ΔW = R Kᵀ(λC0 + K Kᵀ)⁻¹, by Woodbury with λC0 = λ diag(c)."""

    def __init__(self, mem: Memory, lam: float) -> None:
        self.mem, self.lam = mem, lam
        self.W = mem.W0.clone()

    def outputs(self, keys: torch.Tensor) -> torch.Tensor:
        return keys @ self.W.T

    def step(self, keys: torch.Tensor, targets: torch.Tensor) -> None:
        R = targets - self.outputs(keys)  # residual on the current W, (n, d)
        X = keys / (self.lam * self.mem.c)  # K (λC0)⁻¹, (n, m)
        S = torch.eye(keys.shape[0], dtype=F64) + X @ keys.T  # I + K (λC0)⁻¹ Kᵀ, (n, n)
        # (λC0 + KᵀK)⁻¹ Kᵀ R = (λC0)⁻¹ Kᵀ S⁻¹ R, so ΔW = (S⁻¹ R)ᵀ K (λC0)⁻¹
        self.W += torch.linalg.solve(S, R).T @ X

    def delta_energy(self) -> float:
        D = self.W - self.mem.W0
        return float(((D * D) * self.mem.c).sum())

    def extra(self) -> dict:
        return {}


class AlphaEditor:
    """AlphaEdit on C0's null coordinates (P = diag(c < τ)), (C_p + αI)⁻¹ kept by Woodbury."""

    def __init__(self, mem: Memory, alpha: float, tau: float) -> None:
        self.mem, self.alpha = mem, alpha
        self.null = torch.nonzero(mem.c < tau).flatten()  # P = Σ_{i ∈ null} e_i e_iᵀ
        p = len(self.null)
        self.A_inv = torch.eye(p, dtype=F64) / alpha  # (C_p,NN + α I)⁻¹, C_p = Σ K_pᵀ K_p (0 at the start)
        self.W = mem.W0.clone()

    def outputs(self, keys: torch.Tensor) -> torch.Tensor:
        return keys @ self.W.T

    def step(self, keys: torch.Tensor, targets: torch.Tensor) -> None:
        R = targets - self.outputs(keys)
        Kn = keys[:, self.null]  # K P restricted to the null coordinates, (n, p)
        # X = P X solves (P(KᵀK + C_p)P + αI) X = P Kᵀ R, i.e. (A + K_nᵀK_n) X_n = K_nᵀ R with A = C_p,NN + αI
        AK = self.A_inv @ Kn.T  # A⁻¹ K_nᵀ, (p, n)
        S = torch.eye(keys.shape[0], dtype=F64) + Kn @ AK
        S_inv_R = torch.linalg.solve(S, R)
        X_n = AK @ S_inv_R  # (A + K_nᵀK_n)⁻¹ K_nᵀ R = A⁻¹K_nᵀ S⁻¹ R, (p, d)
        self.W[:, self.null] += X_n.T
        # C_p += KᵀK (the edit keys are the keys after the update in a linear memory): A⁻¹ ← (A + K_nᵀK_n)⁻¹
        self.A_inv -= AK @ torch.linalg.solve(S, AK.T)

    def delta_energy(self) -> float:
        D = self.W - self.mem.W0
        return float(((D * D) * self.mem.c).sum())

    def extra(self) -> dict:
        return {"null_dim": len(self.null)}


# --- measures -----------------------------------------------------------------------------------------------


KEPT_THRESHOLDS = (0.3, 0.4, 0.5, 0.7)
RECALL_CHUNK = 256  # edits per block of the recall readout


def stacked_share(share: torch.Tensor, layers: int) -> torch.Tensor:
    """The share of z* − z an edit spread over `layers` layers delivers if each layer delivers `share` of its request.

    The spread (D2) asks layer j (of L, counted from the bottom) for 1/(L − j + 1) of what is left, so
    what is left after all L is Π_{i=1..L} (1 − f/i) (a linear-readout model of the LM's stack).
    """
    f = share.clamp(0.0, 1.0)
    left = torch.ones_like(f)
    for i in range(1, layers + 1):
        left = left * (1 - f / i)
    return 1 - left


def recall_measures(out: torch.Tensor, old: torch.Tensor, targets: torch.Tensor, distractors: int,
                    g: torch.Generator, layers: int = 1) -> dict[str, float]:
    """recall (cosine), recall_l2, delivered and kept@θ for the edits so far (rows of out / old / targets).

    kept@θ: the fraction of edits whose delivered share, stacked over `layers` layers, is ≥ θ;
    stacked_median: the median of that stacked share (the θ at which half the edits are kept).
    """
    t = out.shape[0]
    if t == 0:
        return {"recall": math.nan, "recall_l2": math.nan, "delivered": math.nan, "stacked_median": math.nan,
                **{f"kept@{th:g}": math.nan for th in KEPT_THRESHOLDS}}
    n_other = min(distractors, t - 1)
    if n_other:  # other edits' targets: j ≠ i, drawn per edit
        idx = torch.randint(0, t - 1, (t, n_other), generator=g)
        idx = idx + (idx >= torch.arange(t)[:, None]).long()
    nearest_cos, nearest_l2 = [], []
    for lo in range(0, t, RECALL_CHUNK):  # (rows, 2 + n_other, d) candidates per chunk: 6.7 GB at once for t = 4000
        rows = slice(lo, min(lo + RECALL_CHUNK, t))
        cands = torch.stack([targets[rows], old[rows]], dim=1)
        if n_other:
            cands = torch.cat([cands, targets[idx[rows]]], dim=1)
        nearest_cos.append(torch.nn.functional.cosine_similarity(out[rows, None], cands, dim=2).argmax(dim=1))
        nearest_l2.append((out[rows, None] - cands).norm(dim=2).argmin(dim=1))
    change = targets - old
    delivered = ((out - old) * change).sum(dim=1) / (change * change).sum(dim=1)
    stacked = stacked_share(delivered, layers)
    return {"recall": float((torch.cat(nearest_cos) == 0).double().mean()),
            "recall_l2": float((torch.cat(nearest_l2) == 0).double().mean()),
            "delivered": float(delivered.mean()), "stacked_median": float(stacked.median()),
            **{f"kept@{th:g}": float((stacked >= th).double().mean()) for th in KEPT_THRESHOLDS}}


# --- the experiment ----------------------------------------------------------------------------------------


@dataclass
class Settings:
    dims: list[int] = field(default_factory=lambda: [576, 1024])
    m_ratio: float = 8 / 3
    max_edits: int = 500
    grid: list[int] = field(default_factory=list)  # default: a coarse log grid up to max_edits
    batch: int | str = 1  # edits per step, or "Fd": round(F·d) at each width (the same b/d everywhere)
    methods: list[str] = field(default_factory=lambda: ["mose", "memit", "alphaedit"])
    mose_lams: list[float | str] = field(default_factory=lambda: [1000.0])  # "X@D": λ = X·d/D (λ/d kept)
    mose_memory: float = 0.0
    mose_anchor: str = "previous"  # "original" adds the W0-anchored variant as an extra curve
    memit_lam: float | str = 5000.0  # "X@M": λ = X·m/M (MEMIT's q ≈ m/λ kept)
    alpha: float = 10.0
    null_fraction: float = 0.7  # AlphaEdit's τ: the quantile of C0's eigenvalues (LLaMA3-8B at τ = 0.02: ≈ 70 %)
    null_threshold: float | None = None  # absolute τ on the mean C0 (the configs' 0.02); replaces null_fraction
    layers: dict[str, int] = field(default_factory=lambda: {"mose": 3, "memit": 5, "alphaedit": 5})  # for kept@θ
    w_spectrum: str = "power:0.5"
    c0_spectrum: str = "power:1.0"
    c0_trace: float = 100.0
    targets: str = "shift"
    change: float = 1.0
    key_scale: float | str = 1.0  # "auto": √(mean ‖W0 k*‖² / E‖W0 k‖²) of the real keys in --real / --shape
    keys: str = "gaussian"  # "real": the --real file's keys K (export_memory.py) instead of draws from C0
    distractors: int = 100
    changes: str | None = None  # targets=measured: a MOSE steps.jsonl or its CSV snapshot
    shape: str | None = None  # a --real-style file: synthetic memories take its σ(W0) and eig(C0) shapes
    real: str | None = None
    seed: int = 0


def key_statistics(W0: torch.Tensor, c: torch.Tensor, keys: torch.Tensor) -> dict[str, float]:
    """How a set of keys sits in the memory (C0 = diag(c)): the numbers each method's share depends on.

    norm2: ‖k‖²/tr C0; whitened: kᵀC0⁻¹k/m (MEMIT's q ≈ whitened·m/λ; eigenvalues < 1e-12·max left out);
    output2: ‖W0 k‖²/E‖W0 k‖² (MOSE's first-order share is linear in it); top10: the share of ‖k‖² on C0's
    10 largest directions; cos: mean |cos| between two different keys, raw and whitened (interference).
    """
    keep = c > 1e-12 * c.max()
    white = keys[:, keep] / c[keep].sqrt()
    top = torch.argsort(c, descending=True)[:10]

    def mean_abs_cos(x: torch.Tensor) -> float:
        x = x / x.norm(dim=1, keepdim=True)
        g = (x @ x.T).abs()
        return float((g.sum() - g.diagonal().sum()) / (len(x) * (len(x) - 1)))

    return {"n": len(keys), "norm2": float((keys**2).sum(1).mean() / c.sum()),
            "whitened": float((white**2).sum(1).mean() / keep.sum()),
            "output2": float((keys @ W0.T).pow(2).sum(1).mean() / ((W0 * c) @ W0.T).trace()),
            "top10": float((keys[:, top] ** 2).sum(1).mean() / (keys**2).sum(1).mean()),
            "cos": mean_abs_cos(keys), "cos_whitened": mean_abs_cos(white)}


def scaled(spec: float | str, dim: int) -> float:
    """λ as given, or "X@D" → X·dim/D (the same λ per dimension at another width)."""
    if isinstance(spec, str) and "@" in spec:
        value, _, ref = spec.partition("@")
        return float(value) * dim / float(ref)
    return float(spec)


def label(spec: float | str) -> str:
    return spec if isinstance(spec, str) else f"{spec:g}"


def real_key_scale(path: Path) -> float:
    """√(mean ‖W0 k*‖² / E_{k~C0} ‖W0 k‖²) for the real keys of a memory file: how much larger an edited
    subject's output is than an average token's (the ratio MOSE's first-order share is linear in)."""
    W0, c, K = load_real(path)
    if K is None:
        raise ValueError(f"{path} holds no real keys K: export them (export_memory.py --n-keys) or give a number")
    return math.sqrt(float((K @ W0.T).pow(2).sum(dim=1).mean()) / float(((W0 * c) @ W0.T).trace()))


def default_grid(max_edits: int) -> list[int]:
    grid, x = [0], 1
    while x < max_edits:
        grid += [v for v in (x, 3 * x) if v < max_edits]
        x *= 10
    return sorted(set(grid + [max_edits]))


def editors_for(mem: Memory, s: Settings) -> dict[str, object]:
    out: dict[str, object] = {}
    for method in s.methods:
        if method == "mose":
            for spec in s.mose_lams:
                lam, name = scaled(spec, mem.d), label(spec)
                out[f"mose λ={name}"] = MoseEditor(mem, lam)
                if s.mose_memory:
                    out[f"mose+edits λ={name} μ={s.mose_memory:g}"] = MoseEditor(mem, lam, s.mose_memory)
                if s.mose_anchor == "original":
                    out[f"mose W0-anchor λ={name}"] = MoseEditor(mem, lam, anchor="original")
        elif method == "memit":
            out[f"memit λ={label(s.memit_lam)}"] = MemitEditor(mem, scaled(s.memit_lam, mem.m))
        elif method == "alphaedit":
            tau = s.null_threshold if s.null_threshold is not None else float(torch.quantile(mem.c, s.null_fraction))
            out[f"alphaedit α={s.alpha:g}"] = AlphaEditor(mem, s.alpha, tau)
        else:
            raise ValueError(f"unknown method {method!r}: use mose, memit, alphaedit")
    return out


def batch_spec(text: str) -> int | str:
    """--batch as Settings keeps it: an int, or "Fd" (checked here, read by batch_size)."""
    if text.endswith("d"):
        float(text[:-1])
        return text
    return int(text)


def batch_size(spec: int | str, d: int) -> int:
    """Edits per step: an int, or "Fd" for round(F·d) (e.g. "0.1d": 58 at d = 576, 410 at d = 4096)."""
    return max(1, round(float(spec[:-1]) * d)) if isinstance(spec, str) else spec


def run_dim(d: int | None, s: Settings) -> list[dict]:
    """All methods on one memory: rows of (method, N, measures)."""
    g = torch.Generator().manual_seed(s.seed)
    real_keys = None
    if s.real:
        W0, c, real_keys = load_real(Path(s.real))
    elif s.shape:
        W0, c = shaped_w0_c0(d, round(d * s.m_ratio), Path(s.shape), g)
    else:
        W0, c = synthetic_w0_c0(d, round(d * s.m_ratio), s.w_spectrum, s.c0_spectrum, s.c0_trace, g)
    if s.keys == "real":
        if real_keys is None:
            raise ValueError("keys=real needs --real FILE with a K tensor (export_memory.py --n-keys)")
    elif s.keys != "gaussian":
        raise ValueError(f"unknown keys {s.keys!r}: use gaussian or real")
    else:
        real_keys = None
    key_scale = real_key_scale(Path(s.real or s.shape)) if s.key_scale == "auto" else float(s.key_scale)
    if s.keys == "real" and s.key_scale == "auto":
        key_scale = 1.0  # the real keys are already at their own scale
    changes = measured_changes(Path(s.changes)) if s.changes else None
    keys, targets = draw_edits(W0, c, s.max_edits, s.targets, s.change, g, key_scale, changes, real_keys)
    mem = Memory(W0, c, keys, targets)
    gauss = torch.randn(min(len(keys), 1000), c.shape[0], generator=torch.Generator().manual_seed(s.seed), dtype=F64)
    print(f"d={mem.d} keys ({s.keys}, scale {key_scale:.3f}):", json.dumps(key_statistics(W0, c, keys[:1000])),
          "| N(0, C0):", json.dumps(key_statistics(W0, c, gauss * c.sqrt())), flush=True)
    old, base = mem.old, float(((mem.W0 * mem.c) @ mem.W0.T).trace())  # E‖W0 k‖² = tr(W0 C0 W0ᵀ)
    grid = sorted(set(s.grid or default_grid(s.max_edits)))
    batch = batch_size(s.batch, mem.d)
    rows = []
    for name, editor in editors_for(mem, s).items():
        done, seconds = 0, 0.0
        for n in grid:
            t0 = time.perf_counter()
            while done < n:
                hi = min(done + batch, n)
                editor.step(keys[done:hi], targets[done:hi])
                done = hi
            seconds += time.perf_counter() - t0
            eval_g = torch.Generator().manual_seed(s.seed + n)
            # MOSE's W k = Q (W0 k): from the stored W0 k, a d×d product instead of an m×d one per grid point
            out = old[:n] @ editor.Q.T if isinstance(editor, MoseEditor) else editor.outputs(keys[:n])
            rec = recall_measures(out, old[:n], targets[:n], s.distractors, eval_g,
                                  s.layers.get(name.split()[0].split("+")[0], 1))
            rows.append({"d": mem.d, "m": mem.m, "method": name, "edits": n, "batch": batch, **rec,
                         "preservation_error": math.sqrt(max(editor.delta_energy(), 0.0) / base),
                         "edit_seconds": seconds, "key_scale": key_scale, **editor.extra()})
        print(f"d={mem.d} {name}: {n} edits, recall {rec['recall']:.3f}, kept@0.5 {rec['kept@0.5']:.3f}, "
              f"delivered {rec['delivered']:.3f}, {seconds:.0f} s", flush=True)
    return rows


def write_outputs(rows: list[dict], s: Settings, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    (out / "settings.json").write_text(json.dumps(asdict(s), indent=1))
    lines = ["# Capacity of a linear memory under sequential edits", "", f"settings: `{json.dumps(asdict(s))}`", "",
             "| d | method | edits | recall | recall_l2 | delivered | stacked median | kept@0.3 | kept@0.4 | kept@0.5 "
             "| kept@0.7 | preservation error |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['d']} | {r['method']} | {r['edits']} | {r['recall']:.3f} | {r['recall_l2']:.3f} | "
                     f"{r['delivered']:.3f} | {r['stacked_median']:.3f} | "
                     + "".join(f"{r[f'kept@{th:g}']:.3f} | " for th in KEPT_THRESHOLDS)
                     + f"{r['preservation_error']:.4f} |")
    if len({r["d"] for r in rows}) > 1:
        lines += ["", *widths_table(rows)]
        plot_widths(rows, out / "widths.png")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / "report.png")


def widths_table(rows: list[dict], measures: tuple[str, ...] = ("delivered", "kept@0.4", "kept@0.5",
                                                                 "preservation_error")) -> list[str]:
    """Markdown: one row per (method, d), each measure at every N of the grid (the numbers of widths.png)."""
    grid = sorted({r["edits"] for r in rows if r["edits"] > 0})
    at = {(r["method"], r["d"], r["edits"]): r for r in rows}
    lines = ["## By width (one row per method and d; values after N = " + " / ".join(map(str, grid)) + " edits)", "",
             "| method | d | m | b | " + " | ".join(measures) + " |", "|---|---|---|---|" + "---|" * len(measures)]
    for method in dict.fromkeys(r["method"] for r in rows):
        for d in sorted({r["d"] for r in rows if r["method"] == method}):
            sel = [at.get((method, d, n)) for n in grid]
            first = next(r for r in sel if r)
            cells = [" / ".join("–" if r is None else f"{r[k]:.3f}" for r in sel) for k in measures]
            lines.append(f"| {method} | {d} | {first['m']} | {first.get('batch', '')} | " + " | ".join(cells) + " |")
    return lines


def read_results(path: Path) -> list[dict]:
    """results.csv back into rows (numbers as numbers), for --from-results."""
    def value(text: str) -> object:
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "e" not in text else number
    with path.open() as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(2, len(dims), figsize=(4.2 * len(dims), 6.4), squeeze=False)
    for j, d in enumerate(dims):
        for method in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r["d"] == d and r["method"] == method and r["edits"] > 0]
            if not sel:
                continue
            n = [r["edits"] for r in sel]
            axes[0][j].plot(n, [r["recall"] for r in sel], "o-", ms=3, label=method)
            axes[1][j].plot(n, [r["preservation_error"] for r in sel], "o-", ms=3, label=method)
        axes[0][j].set_title(f"d = {d}", fontsize=9)
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.set_xlabel("edits so far")
        axes[0][j].set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("recall of all edits so far")
    axes[1][0].set_ylabel("preservation error (held-out keys)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


WIDTH_PANELS = (("kept@0.4", "kept@0.4 (share stacked over the method's\nlayers ≥ 0.4: the readout that matches\nthe LM's kept rates, README)"),
                ("delivered", "delivered share per layer"), ("recall", "recall (cosine-nearest candidate)"))


def plot_widths(rows: list[dict], path: Path) -> None:
    """One panel per (measure, method), one curve per d: the capacity figure of issue 20."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    dims = sorted({r["d"] for r in rows})
    colours = plt.cm.viridis([i / max(len(dims) - 1, 1) * 0.85 for i in range(len(dims))])
    fig, axes = plt.subplots(len(WIDTH_PANELS), len(methods), figsize=(3.6 * len(methods), 2.9 * len(WIDTH_PANELS)),
                             squeeze=False, sharey="row")
    for j, method in enumerate(methods):
        for colour, d in zip(colours, dims, strict=True):
            sel = [r for r in rows if r["d"] == d and r["method"] == method and r["edits"] > 0]
            for i, (key, _) in enumerate(WIDTH_PANELS):
                axes[i][j].plot([r["edits"] for r in sel], [r[key] for r in sel], "o-", ms=3, color=colour,
                                label=f"d = {d}")
        axes[0][j].set_title(method, fontsize=9)
        axes[-1][j].set_xlabel("edits so far (N)")
        for i, (_, ylabel) in enumerate(WIDTH_PANELS):
            axes[i][j].set_xscale("log")
            axes[i][j].grid(alpha=0.3)
            if j == 0:
                axes[i][j].set_ylabel(ylabel, fontsize=8)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(s: Settings, out: Path | None = None) -> list[dict]:
    rows = []
    for d in [None] if s.real else s.dims:
        rows += run_dim(d, s)
        if out is not None:  # after each width: a stopped run keeps the widths it finished
            write_outputs(rows, s, out)
    return rows


def _lam(text: str) -> float | str:
    return text if "@" in text else float(text)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="d = 576, 1024; N ≤ 500 (a few minutes on one core)")
    ap.add_argument("--dims", default="576,1024,2048,4096")
    ap.add_argument("--max-edits", type=int, default=4000)
    ap.add_argument("--grid", default="", help="comma-separated edit counts (default: 0, 1, 3, 10, 30, …, max)")
    ap.add_argument("--batch", default="1",
                    help="edits per step (one Procrustes / solve per step); Fd: round(F·d), e.g. 0.1d")
    ap.add_argument("--methods", default="mose,memit,alphaedit")
    ap.add_argument("--mose-lams", default="1000",
                    help="comma-separated λ for MOSE, one curve each; X@D: λ = X·d/D (same λ/d at every width)")
    ap.add_argument("--mose-memory", type=float, default=0.0, help="μ > 0 adds the variant holding past edits")
    ap.add_argument("--mose-anchor", choices=("previous", "original"), default="previous",
                    help="original: also run MOSE anchored to W0's outputs (an extra curve)")
    ap.add_argument("--memit-lam", default="5000", help="X or X@M: λ = X·m/M (same λ/m at every width)")
    ap.add_argument("--alpha", type=float, default=10.0, help="AlphaEdit's L2")
    ap.add_argument("--null-fraction", type=float, default=0.7)
    ap.add_argument("--null-threshold", type=float, default=None, help="absolute τ (the configs' 0.02)")
    ap.add_argument("--w-spectrum", default="power:0.5")
    ap.add_argument("--c0-spectrum", default="power:1.0")
    ap.add_argument("--c0-trace", type=float, default=100.0, help="E‖k‖² (matters for AlphaEdit's α only)")
    ap.add_argument("--targets", choices=("shift", "swap", "measured"), default="shift")
    ap.add_argument("--changes", default=None, help="targets=measured: MOSE steps.jsonl or its CSV snapshot")
    ap.add_argument("--snapshot-changes", default=None,
                    help="a (running) MOSE steps.jsonl: write its changes to OUT/changes.csv and use that")
    ap.add_argument("--keys", choices=("gaussian", "real"), default="gaussian", help="real: the --real file's K")
    ap.add_argument("--shape", default=None, help="memory file whose σ(W0) / eig(C0) shapes the synthetic memories take")
    ap.add_argument("--change", type=float, default=1.0, help="shift targets: ‖v − W0 k‖ / ‖W0 k‖")
    ap.add_argument("--key-scale", default="1", help="edited keys = this × a draw from C0; auto: the real keys' ratio")
    ap.add_argument("--distractors", type=int, default=100)
    ap.add_argument("--real", default=None, help="safetensors with W0 (d×m) and C0 (m×m): replaces --dims")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-results", type=Path, default=None,
                    help="a results.csv (settings.json beside it): rewrite report.md and the figures into --out, no edits")
    a = ap.parse_args()
    if a.from_results:
        saved = json.loads((a.from_results.parent / "settings.json").read_text())
        write_outputs(read_results(a.from_results), Settings(**saved), a.out)
        print(f"report.md and figures from {a.from_results} → {a.out}")
        return
    if a.snapshot_changes:
        a.changes = str(write_changes(Path(a.snapshot_changes), a.out / "changes.csv"))
    dims = [int(x) for x in a.dims.split(",")]
    max_edits = a.max_edits
    if a.quick:
        dims, max_edits = [x for x in dims if x <= 1024] or [576], min(max_edits, 500)
    s = Settings(dims=dims, max_edits=max_edits, grid=[int(x) for x in _floats(a.grid)], batch=batch_spec(a.batch),
                 methods=a.methods.split(","), mose_lams=[_lam(x) for x in a.mose_lams.split(",") if x],
                 mose_memory=a.mose_memory, mose_anchor=a.mose_anchor, memit_lam=_lam(a.memit_lam), alpha=a.alpha,
                 null_fraction=a.null_fraction, null_threshold=a.null_threshold, w_spectrum=a.w_spectrum,
                 c0_spectrum=a.c0_spectrum, c0_trace=a.c0_trace, targets=a.targets, change=a.change,
                 key_scale=a.key_scale if a.key_scale == "auto" else float(a.key_scale), keys=a.keys,
                 changes=a.changes, shape=a.shape, distractors=a.distractors, real=a.real, seed=a.seed)
    rows = run(s, a.out)
    print(f"{len(rows)} rows → {a.out}/results.csv, report.md, report.png")


if __name__ == "__main__":
    main()
