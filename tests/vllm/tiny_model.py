"""Makes a tiny random-weight Llama that vLLM can serve on a CPU (no model can be downloaded here).

A byte-level BPE tokenizer trained on a few sentences (vocabulary ~512), a 2-layer Llama with
hidden size 128 and 2 heads of dim 64 (vLLM's CPU attention kernel rejects head dim 16), saved
as safetensors with a chat template. Run as ``python tiny_model.py DIR`` or call :func:`make`.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

SENTENCES = [
    "The simulation converged after forty steps and the energy stayed bounded.",
    "Summarize the findings of the molecular dynamics run in one sentence.",
    "Scientists run workflows on laptops today and on supercomputers tomorrow.",
    "A heterogeneous workload mixes executables, Python functions and inference requests.",
    "The quick brown fox jumps over the lazy dog while the cluster schedules jobs.",
    "Hello world, this is a tiny language model with random weights for tests.",
] * 20


def make(target: str | Path) -> Path:
    """Write the model to ``target`` (created) and return its path."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(target)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(target, safe_serialization=True)
    return target


if __name__ == "__main__":
    print(make(sys.argv[1]))
