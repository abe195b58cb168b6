"""Residual-space targets for an MLP whose output is normalised before the residual add (D14).

Gemma-style blocks add n(o) = g ⊙ o / sqrt(mean(o²) + ε) to the residual, o = W k the down
projection's output (transformers' Gemma3DecoderLayer: post_feedforward_layernorm after the MLP).
MEMIT's spread (methods.md §3 step 2; Meng et al. 2023, eq. 14) hands layer i a residual-space
share R_i, and every closed form (MEMIT, EMMET, AlphaEdit, RECT, PRUNE, MOSE) then asks the down
projection for W k + R_i. With the norm in between that is wrong twice over: n rescales whatever
the projection writes (a share of the residual's size added to a pre-norm output of norm ~2 is
scaled by g again), and n's output can only reach a shell — rms(n(x) ⊘ g) = 1 for any x, so
n(o) + R_i is in general not the image of any x.

The mapping used here (closed form, float64, one row per request), for o = W K_i and target
y = n(o) + R_i:

1. Direction. Write x = s·u with rms(u) = 1, so n(x) = g ⊙ u (ε aside). The realisable output
   closest to y in residual space is the u minimising ‖g ⊙ u − y‖² on that sphere, a
   trust-region problem whose solution is u_j = g_j y_j / (g_j² + μ) with the multiplier μ ≥ 0
   set so that rms(u) = 1 (found by bisection; when y is reachable μ = 0 and u = y ⊘ g, the
   hint's inverse of the gain). μ is kept ≥ 0: when y lies inside the shell (rms(y ⊘ g) < 1) the
   exact optimum would amplify the weakest-gain coordinates without bound, so μ = 0 and the
   output is y scaled out radially by 1/rms(y ⊘ g) (a small overshoot, since the spread's shares
   are small); the next layer of the spread re-measures what is still missing and corrects it.
2. Tiny gains. Coordinates with |g_j| ≤ τ·max|g| (τ = GAIN_FLOOR) barely reach the residual (the
   real model has gains of exactly 0 next to gains of 600); dividing by them would let those
   coordinates swallow the whole norm budget. They keep their current normalised value
   u_j = o_j / rms(o), and the live coordinates share the rest of the budget.
3. Scale. n is scale-invariant up to ε, so the scale of x is free: x = rms(o)·u keeps the
   current output's norm (‖x‖ = ‖o‖). The ε term then acts on x exactly as on o, so the target
   is divided by κ = rms(o) / sqrt(rms(o)² + ε) before step 1 and n(x) = y holds exactly where y
   is reachable (the random tiny models have rms(o)² within a factor 10 of ε). The change
   ‖x − o‖ = 2 sin(θ/2)‖o‖ is the least change sin θ·‖o‖ to second order in the turn θ, and
   unlike the least-change scale it never shrinks x towards ε or flips it for θ > 90°; with
   ‖x‖ = ‖o‖ a solver that realises only a fraction c of x − o (λC0 in MEMIT) moves the
   normalised output along the arc from n(o) towards y.

The down projection is then asked for x: the share handed to the solver is x − o (pre-norm).
Optimising z* at the down projection's output through the norm (the other option of D14) would
change the value optimisation that MEMIT-family methods share with LLaMA, GPT-2 and Qwen2; the
closed form leaves every unnormalised family on the old code path, bit for bit.
"""

from __future__ import annotations

import torch

GAIN_FLOOR = 1e-3  # τ: |g_j| ≤ τ·max|g| counts as a gain the residual does not see
BUDGET_FLOOR = 0.5  # the live coordinates always get at least half of the unit-rms budget
BISECTION_STEPS = 200


def rms_norm(x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    """n(x) = g ⊙ x / sqrt(mean(x²) + ε) over the last dimension (Gemma3RMSNorm's formula)."""
    return gain * x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def unit_direction(target: torch.Tensor, current: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """u (n, d) with rms(u) = 1 whose normalised output g ⊙ u is closest to `target` (steps 1-2)."""
    target, current, gain = target.double(), current.double(), gain.double()
    d = gain.shape[-1]
    live = gain.abs() > GAIN_FLOOR * gain.abs().max()
    # dead coordinates: the current normalised value (o / rms(o)), which the residual barely sees
    cur_unit = current / current.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-300)
    dead_part = torch.where(live, torch.zeros_like(cur_unit), cur_unit)
    dead_sq = dead_part.pow(2).sum(dim=-1, keepdim=True)
    budget = d - dead_sq  # what Σ_live u_j² must be for rms(u) = 1
    low = budget < BUDGET_FLOOR * d
    if bool(low.any()):  # o lives mostly where the gain is ~0: shrink that part to leave half the budget
        shrink = torch.sqrt((1 - BUDGET_FLOOR) * d / dead_sq.clamp_min(1e-300))
        dead_part = torch.where(low, dead_part * shrink, dead_part)
        budget = torch.where(low, torch.full_like(budget, BUDGET_FLOOR * d), budget)
    g = torch.where(live, gain, torch.ones_like(gain))
    gy = torch.where(live, g * target, torch.zeros_like(target))

    def live_sq(mu: torch.Tensor) -> torch.Tensor:
        return (gy / (g * g + mu)).pow(2).sum(dim=-1, keepdim=True)

    zero = torch.zeros_like(budget)
    outside = live_sq(zero) > budget  # target beyond the shell: μ > 0 pulls it onto it
    lo = zero
    hi = torch.sqrt(gy.pow(2).sum(dim=-1, keepdim=True) / budget)  # live_sq(hi) ≤ budget
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        too_big = live_sq(mid) > budget
        lo, hi = torch.where(too_big, mid, lo), torch.where(too_big, hi, mid)
    mu = torch.where(outside, hi, zero)
    u = gy / (g * g + mu) + dead_part
    return u


def prenorm_share(current: torch.Tensor, share: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    """The change x − o (n, d) of the down projection's output whose normalised output realises
    (as closely as the norm allows) n(o) + share, for current outputs o (n, d); float64."""
    o, gain = current.double(), gain.double()
    scale = o.pow(2).mean(dim=-1, keepdim=True).sqrt()  # rms(o): x keeps it
    kappa = scale / torch.sqrt(scale * scale + eps)
    y = rms_norm(o, gain, eps) + share.double()
    u = unit_direction(y / kappa.clamp_min(1e-300), o, gain)
    return scale * u - o
