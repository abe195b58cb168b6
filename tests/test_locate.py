"""The shared machinery: tokenisation, tracing, keys, value optimisation, C0."""

from __future__ import annotations

import pytest
import torch

from editbench.data.records import EditRequest
from editbench.locate.context import EditContext
from editbench.locate.forward import final_hidden
from editbench.locate.prompts import encode, encode_with_subject, pad_right, target_ids
from editbench.locate.reads import group_mean, layer_keys, read_at_subject
from editbench.locate.stats import SecondMoments, StatsParams
from editbench.locate.trace import Trace, add_at_positions, frozen_prefix
from editbench.locate.values import ValueParams, optimize_values

FRANCE = EditRequest("0", "The capital of {} is", "France", "Berlin", "Paris")
DARRIEUX = EditRequest("1", "The mother tongue of {} is", "Danielle Darrieux", "English", "French")


def test_target_ids_keep_leading_space_and_no_bos(smollm2):
    tok = smollm2.tokenizer
    ids = target_ids(tok, "Paris")
    assert tok.decode(ids) == " Paris"
    assert tok.bos_token_id not in ids


def test_subject_last_token_and_label_alignment(smollm2):
    tok = smollm2.tokenizer
    enc = encode_with_subject(tok, "Because of this. {}", DARRIEUX.prompt, DARRIEUX.subject)
    text = tok.decode(list(enc.ids))
    assert text == "Because of this. The mother tongue of Danielle Darrieux is"
    assert tok.decode(list(enc.ids[: enc.subject_last + 1])).endswith("Darrieux")
    assert not tok.decode(list(enc.ids[: enc.subject_last])).endswith("Darrieux")
    # prompt ids + target ids is the teacher-forcing sequence; labels sit on the last |target| positions
    tgt = target_ids(tok, "English")
    full = list(encode(tok, DARRIEUX.prompt_text)) + tgt
    assert tok.decode(full) == "The mother tongue of Danielle Darrieux is English"


def test_subject_position_with_a_bos_tokenizer(tiny):
    from editbench.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer(add_bos=True)
    enc = encode_with_subject(tok, "{}", FRANCE.prompt, FRANCE.subject)
    assert enc.ids[0] == tok.bos_token_id
    assert tok.decode(list(enc.ids[1 : enc.subject_last + 1])).endswith("France")


def test_trace_reads_the_down_proj_input_computed_by_hand(tiny):
    model, spec = tiny.model, tiny.spec
    batch = pad_right([encode(tiny.tokenizer, "The capital of France is")], 0)
    mlp = spec.mlp(model, 1)
    with Trace(mlp, retain_input=True) as t_mlp, Trace(spec.down_proj(model, 1), retain_input=True) as t_down:
        final_hidden(model, batch)
    x = t_mlp.input
    by_hand = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
    torch.testing.assert_close(t_down.input, by_hand)


def test_trace_patches_only_the_intended_position(tiny):
    model, spec = tiny.model, tiny.spec
    batch = pad_right([encode(tiny.tokenizer, "The capital of France is")], 0)
    last = spec.n_layers - 1
    with Trace(spec.layer(model, last), retain_output=True) as t:
        clean = final_hidden(model, batch)
    delta = torch.randn(1, spec.hidden_size)
    rows, cols = torch.tensor([0]), torch.tensor([2])
    with Trace(spec.layer(model, last), edit_output=lambda h: add_at_positions(h, rows, cols, delta)):
        patched = final_hidden(model, batch)
    changed = (patched - clean).abs().amax(dim=-1)[0]
    assert changed[2] > 0 and torch.count_nonzero(changed) == 1
    # by hand: the final norm applied to (pre-norm residual + δ) at that position
    torch.testing.assert_close(patched[0, 2], model.model.norm(t.output[0, 2] + delta[0]))


def test_frozen_prefix_replays_cached_output(tiny):
    model, spec = tiny.model, tiny.spec
    batch = pad_right([encode(tiny.tokenizer, "The capital of France is")], 0)
    with Trace(spec.layer(model, 1), retain_output=True) as t:
        reference = final_hidden(model, batch)
    layers = [spec.layer(model, i) for i in range(2)]
    with frozen_prefix(layers, t.output):
        replayed = final_hidden(model, batch)
    torch.testing.assert_close(replayed, reference)
    assert "forward" not in layers[0].__dict__  # restored


def test_suffix_on_a_kv_cache_sees_the_prefix(tiny):
    """Regression: transformers 5.17 has no `cache=` keyword and silently ran the suffix without
    its prefix, which broke every z* on the lent GPU (its image has 5.17)."""
    from transformers import DynamicCache

    from editbench.locate.values import _crop

    batch = pad_right([encode(tiny.tokenizer, "The capital of France is Paris, they say")], 0)
    reference = final_hidden(tiny.model, batch)
    cache = DynamicCache(config=tiny.model.config)
    final_hidden(tiny.model, batch, cache=cache)
    _crop(cache, 3)
    suffix = final_hidden(tiny.model, batch.columns(3), cache=cache)
    torch.testing.assert_close(suffix, reference[:, 3:], rtol=1e-5, atol=1e-5)
    assert cache.get_seq_length() == batch.input_ids.shape[1]


def test_a_forward_that_ignores_the_cache_keyword_is_refused(tiny, monkeypatch):
    """What transformers 5.17 did with `cache=`: the keyword vanishes into **kwargs."""
    from transformers import DynamicCache

    import editbench.locate.forward as forward

    monkeypatch.setattr(forward, "_cache_kwarg", lambda cls: "kv_cache_under_another_name")
    batch = pad_right([encode(tiny.tokenizer, "The capital of France is")], 0)
    with pytest.raises(RuntimeError, match="did not fill the KV cache"):
        final_hidden(tiny.model, batch, cache=DynamicCache(config=tiny.model.config))


def test_keys_equal_down_proj_input_captured_by_hand(tiny):
    groups = [["{}"], ["Some words here. {}", "I think that. {}"]]
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, groups)
    keys = layer_keys(ctx, [FRANCE, DARRIEUX], 2)
    by_hand = []
    for req in (FRANCE, DARRIEUX):
        per_template = []
        for template in ["{}", "Some words here. {}", "I think that. {}"]:
            enc = encode_with_subject(tiny.tokenizer, template, req.prompt, req.subject)
            with Trace(tiny.spec.down_proj(tiny.model, 2), retain_input=True) as t:
                final_hidden(tiny.model, pad_right([enc.ids], 0))
            per_template.append(t.input[0, enc.subject_last])
        # MEMIT weighting: bare prompt ½, each prefix ¼
        by_hand.append(0.5 * per_template[0] + 0.25 * (per_template[1] + per_template[2]))
    torch.testing.assert_close(keys, torch.stack(by_hand), rtol=1e-5, atol=1e-6)
    reads = read_at_subject(ctx, [FRANCE], ["{}"], [(2, "key")])
    assert torch.allclose(group_mean(reads[(2, "key")], [["{}"]]), reads[(2, "key")][:, 0])


def _top1_after_insert(lm, request: EditRequest, layer: int, site: str, values: torch.Tensor) -> int:
    """Insert v* at the site on the bare prompt and return the argmax next token (first target token)."""
    enc = encode_with_subject(lm.tokenizer, "{}", request.prompt, request.subject)
    batch = pad_right([enc.ids], 0)
    module = lm.spec.layer(lm.model, layer) if site == "residual" else lm.spec.mlp(lm.model, layer)

    def replace(h):
        h = h.clone()
        h[0, enc.subject_last] = values[0]
        return h

    with Trace(module, edit_output=replace):
        hidden = final_hidden(lm.model, batch)
    return int(lm.model.get_output_embeddings()(hidden[0, -1]).argmax())


@pytest.mark.parametrize("site", ["residual", "mlp_out"])
def test_value_optimisation_reaches_top1_on_tiny(tiny, site):
    # Random tiny models barely mix positions, so the subject ends the prompt here.
    request = EditRequest("0", "The country whose capital we ask for is {}", "France", "Berlin")
    params = ValueParams(steps=60, lr=0.5, clamp_norm_factor=50.0, weight_decay=0.0, kl_factor=0.0)
    res = optimize_values(tiny, [request], ["{}"], 2, site, params)
    assert res.losses[-1][0] < res.losses[0][0]
    assert _top1_after_insert(tiny, request, 2, site, res.values) == target_ids(tiny.tokenizer, "Berlin")[0]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("site", ["residual", "mlp_out"])
def test_fast_value_optimisation_equals_straightforward(arch, site):
    from editbench.bench import reference_values
    from editbench.models.loading import load_model
    from tests.conftest import tiny_cfg

    lm = load_model(tiny_cfg(arch))
    params = ValueParams(steps=8)
    templates = ["{}", "A somewhat longer prefix than the other. {}"]
    reqs = [FRANCE, DARRIEUX]
    fast = optimize_values(lm, reqs, templates, 2, site, params)
    # the straightforward one: per request, full forward, full-vocabulary logits, weight gradients
    slow = reference_values(lm, reqs, templates, 2, site, params)
    torch.testing.assert_close(fast.values, slow, rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad or p.grad is not None for p in lm.model.parameters())


@pytest.mark.smollm2
def test_value_optimisation_reaches_top1_on_smollm2(smollm2):
    request = EditRequest("0", "The capital of {} is", "France", "Berlin")
    params = ValueParams(steps=25, lr=0.5, weight_decay=1e-3, clamp_norm_factor=4.0, kl_factor=0.0625)
    res = optimize_values(smollm2, [request], ["{}"], 8, "residual", params)
    assert _top1_after_insert(smollm2, request, 8, "residual", res.values) == target_ids(smollm2.tokenizer,
                                                                                        "Berlin")[0]


def test_second_moments_symmetric_psd_cached_and_keyed_by_model(tiny, data_dir, isolated_cache):
    from editbench.models.loading import load_model
    from tests.conftest import tiny_cfg

    params = StatsParams(n_tokens=2000, max_len=64)
    stats = SecondMoments(tiny.model, tiny.tokenizer, tiny.spec, tiny.fingerprint, params, data_dir)
    c0 = stats(1)
    assert c0.dtype == torch.float64 and c0.shape == (tiny.spec.ffn_size,) * 2
    torch.testing.assert_close(c0, c0.T)
    assert torch.linalg.eigvalsh(c0).min() > -1e-10
    files = list((isolated_cache / "stats").glob("*.safetensors"))
    assert len(files) == 1
    again = SecondMoments(tiny.model, tiny.tokenizer, tiny.spec, tiny.fingerprint, params, data_dir)
    assert again.path(1) == files[0]
    torch.testing.assert_close(again(1), c0)
    other = load_model(tiny_cfg(seed=1))
    other_stats = SecondMoments(other.model, other.tokenizer, other.spec, other.fingerprint, params, data_dir)
    assert other_stats.path(1) != files[0]
    assert not torch.allclose(other_stats(1), c0)
    assert len(list((isolated_cache / "stats").glob("*.safetensors"))) == 2


def test_several_layers_in_one_optimisation_equal_separate_runs(tiny):
    params = ValueParams(steps=6)
    reqs = [FRANCE, DARRIEUX]
    joint = optimize_values(tiny, reqs, ["{}"], [0, 2], "mlp_out", params)
    for j, layer in enumerate([0, 2]):  # not the last layer: δ there cannot reach later positions
        alone = optimize_values(tiny, reqs, ["{}"], layer, "mlp_out", params)
        torch.testing.assert_close(joint.values[j * 2 : j * 2 + 2], alone.values, rtol=1e-4, atol=1e-5)


def test_second_moment_equals_mean_outer_product_by_hand(tiny, data_dir, isolated_cache):
    from editbench.locate.stats import corpus_text, token_windows

    params = StatsParams(n_tokens=600, max_len=32)
    c0 = SecondMoments(tiny.model, tiny.tokenizer, tiny.spec, tiny.fingerprint, params, data_dir)(1)
    text, _ = corpus_text("wikitext2", data_dir)
    keys = []
    for window in token_windows(tiny.tokenizer, text, 600, 32):
        with Trace(tiny.spec.down_proj(tiny.model, 1), retain_input=True) as t:
            final_hidden(tiny.model, pad_right([window], 0))  # the full forward, no early stop
        keys.append(t.input[0].double())
    K = torch.cat(keys)
    torch.testing.assert_close(c0, K.T @ K / len(K), rtol=1e-5, atol=1e-8)
