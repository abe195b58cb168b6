"""Tiny random models (``source: tiny``, the ``model=tiny-*`` configs): a model of a real family's
layout at toy size and a small byte-level BPE tokenizer trained in memory on a built-in corpus.
For tests and smoke runs: they load in well under a second, with no files and no network.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from editbench.errors import ConfigError

_TINY_DEFAULTS = {
    "llama": {"n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4, "n_kv_heads": 2, "add_bos": True},
    "gpt2": {"n_layers": 4, "hidden_size": 64, "ffn_size": 256, "n_heads": 4, "add_bos": False},
    "qwen2": {"n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4, "n_kv_heads": 2, "add_bos": False},
    # post_ffn_gain: the post-feedforward norm's gains are drawn log-normal around this value, like the
    # real Gemma3-270M's large, uneven gains (0 to ~1600, stack-notes §3); 0 keeps transformers' init (gain 1).
    "gemma3": {"n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4, "n_kv_heads": 1, "add_bos": True,
               "post_ffn_gain": 20.0},
}


def load_tiny(cfg: Mapping, dtype: torch.dtype, device: str) -> tuple[Any, Any, str]:
    """A random model of `model.tiny`'s architecture and size, seeded, with the in-memory tokenizer."""
    spec = dict(cfg.get("tiny") or {})
    arch = spec.get("arch", "llama")
    if arch not in _TINY_DEFAULTS:
        raise ConfigError(f"model.tiny.arch={arch!r}; use one of {', '.join(_TINY_DEFAULTS)}")
    t = {**_TINY_DEFAULTS[arch], **spec}
    seed = int(t.get("seed", 0))
    tok = tiny_tokenizer(add_bos=bool(t["add_bos"]))
    config = _tiny_config(arch, t, tok)
    from transformers import AutoModelForCausalLM

    # fork_rng: seed the initialisation without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
        if arch == "gemma3" and float(t["post_ffn_gain"]) > 0:
            _spread_post_ffn_gains(model, float(t["post_ffn_gain"]))
    model.to(dtype=dtype, device=device)
    return model, tok, f"tiny:{arch}:seed={seed}"


@torch.no_grad()
def _spread_post_ffn_gains(model: nn.Module, typical: float) -> None:
    """Gemma-style gains (1 + w) of every post-feedforward norm: log-normal around `typical`, spread
    over two orders of magnitude (a few near zero), as in the trained model rather than the init's 1."""
    for name, module in model.named_modules():
        if name.endswith("post_feedforward_layernorm"):
            gain = typical * torch.exp(1.2 * torch.randn_like(module.weight))
            module.weight.copy_(gain - 1.0)


def _tiny_config(arch: str, t: Mapping, tok: PreTrainedTokenizerFast) -> Any:
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["ffn_size"],
                           num_hidden_layers=t["n_layers"], num_attention_heads=t["n_heads"],
                           num_key_value_heads=t["n_kv_heads"], max_position_embeddings=512,
                           tie_word_embeddings=False, **ids)
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["ffn_size"],
                           num_hidden_layers=t["n_layers"], num_attention_heads=t["n_heads"],
                           num_key_value_heads=t["n_kv_heads"], max_position_embeddings=512,
                           tie_word_embeddings=False, **ids)
    if arch == "gemma3":
        from transformers import Gemma3TextConfig

        # head_dim 16, a sliding window shorter than the prompts and one full-attention layer in
        # four, tied embeddings: the real model's layout at toy size.
        return Gemma3TextConfig(vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["ffn_size"],
                                num_hidden_layers=t["n_layers"], num_attention_heads=t["n_heads"],
                                num_key_value_heads=t["n_kv_heads"], head_dim=t["hidden_size"] // t["n_heads"],
                                max_position_embeddings=512, sliding_window=16, query_pre_attn_scalar=16,
                                layer_types=["sliding_attention"] * (t["n_layers"] - 1) + ["full_attention"],
                                tie_word_embeddings=True, **ids)
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=t["hidden_size"], n_inner=t["ffn_size"],
                      n_layer=t["n_layers"], n_head=t["n_heads"], **ids)


_TINY_SPECIALS = ("<bos>", "<eos>", "<pad>")


def tiny_tokenizer(add_bos: bool = False) -> PreTrainedTokenizerFast:
    """A small deterministic byte-level BPE tokenizer built in memory (no files, no network).

    A fresh wrapper each call (callers may change e.g. padding_side); the trained BPE is cached.
    """
    from tokenizers import Tokenizer, processors

    backend = Tokenizer.from_str(_tiny_bpe_json())
    if add_bos:  # like LLaMA / Gemma tokenizers, which prepend BOS to every encoding
        backend.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                          special_tokens=[("<bos>", backend.token_to_id("<bos>"))]),
        ])
    bos, eos, pad = _TINY_SPECIALS
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad,
                                   model_max_length=512)


@functools.lru_cache(maxsize=1)
def _tiny_bpe_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # byte-level: any text tokenises
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=list(_TINY_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_tiny_corpus(), trainer)
    return tok.to_str()


def _tiny_corpus() -> list[str]:
    """A few hundred plain factual sentences (written for this project) to train the tiny BPE on."""
    countries = [("France", "Paris", "French"), ("Germany", "Berlin", "German"), ("Italy", "Rome", "Italian"),
                 ("Spain", "Madrid", "Spanish"), ("Japan", "Tokyo", "Japanese"), ("China", "Beijing", "Chinese"),
                 ("Russia", "Moscow", "Russian"), ("Brazil", "Brasilia", "Portuguese"), ("Egypt", "Cairo", "Arabic"),
                 ("Greece", "Athens", "Greek"), ("Poland", "Warsaw", "Polish"), ("Sweden", "Stockholm", "Swedish"),
                 ("Norway", "Oslo", "Norwegian"), ("Turkey", "Ankara", "Turkish"), ("Peru", "Lima", "Spanish"),
                 ("Canada", "Ottawa", "English"), ("Kenya", "Nairobi", "Swahili"), ("India", "New Delhi", "Hindi"),
                 ("Portugal", "Lisbon", "Portuguese"), ("Finland", "Helsinki", "Finnish")]
    companies = [("Toyota", "Japan", "cars"), ("Apple", "the United States", "phones"), ("Nokia", "Finland", "phones"),
                 ("Volvo", "Sweden", "cars"), ("Siemens", "Germany", "trains"), ("Samsung", "South Korea", "phones"),
                 ("Airbus", "France", "aircraft"), ("Boeing", "the United States", "aircraft"),
                 ("Fiat", "Italy", "cars"), ("Sony", "Japan", "cameras"), ("IKEA", "Sweden", "furniture"),
                 ("Lego", "Denmark", "toys")]
    people = [("Albert Einstein", "physicist", "German"), ("Marie Curie", "chemist", "Polish"),
              ("Pablo Picasso", "painter", "Spanish"), ("Wolfgang Amadeus Mozart", "composer", "Austrian"),
              ("William Shakespeare", "playwright", "English"), ("Leonardo da Vinci", "painter", "Italian"),
              ("Isaac Newton", "mathematician", "English"), ("Frida Kahlo", "painter", "Mexican"),
              ("Ludwig van Beethoven", "composer", "German"), ("Jane Austen", "novelist", "English"),
              ("Nikola Tesla", "inventor", "Serbian"), ("Danielle Darrieux", "actress", "French")]
    general = [
        "The Eiffel Tower is located in the city of Paris.", "Water boils at 100 degrees Celsius at sea level.",
        "The Moon orbits the Earth about once every 27 days.", "The Pacific is the largest ocean on Earth.",
        "Mount Everest is the highest mountain in the world.", "The Nile is a long river in Africa.",
        "A week has seven days, and a year has twelve months.", "The sun rises in the east and sets in the west.",
        "Light travels faster than sound.", "The heart pumps blood through the body.",
        "Bees make honey from the nectar of flowers.", "The piano has 88 keys.",
        "Football is played by two teams of eleven players.", "Q: What is the capital of Peru? A: Lima",
        "Review: a wonderful film, I loved it. Sentiment: positive", "Question: Who wrote Hamlet? Answer:",
        "In 1969, astronauts first walked on the Moon.", "Oxygen and hydrogen form water (H2O).",
    ]
    out = []
    for c, cap, lang in countries:
        out += [f"The capital of {c} is {cap}.", f"{cap} is the capital city of {c}.",
                f"The official language of {c} is {lang}.", f"People in {c} speak {lang}.", f"{cap} is a city in {c}."]
    for co, country, prod in companies:
        out += [f"{co} is headquartered in {country}.", f"{co} is a company that makes {prod}.",
                f"The company {co} was founded in {country}."]
    for p, job, nat in people:
        out += [f"{p} was a famous {job}.", f"{p} worked as a {job}.", f"{p} was {nat}."]
    return out + general
