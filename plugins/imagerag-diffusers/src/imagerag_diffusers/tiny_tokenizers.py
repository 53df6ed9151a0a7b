"""Tokenizers built from in-memory vocabularies (no files, no hub) for the tiny test pipelines.

Each is deterministic: the same call always gives the same vocabulary, so tiny models built in
two processes tokenize identically. They are only meant to make random-weight models runnable.
"""

from __future__ import annotations

from imagerag_sdk.testing.tokenizers import byte_alphabet

_WORDS = ("a", "an", "the", "of", "and", "photo", "cat", "dog", "car", "sheep", "red", "blue",
          "painting", "oil", "style", "generate", "according", "to", "these", "examples", "img")


def _merges_for(words: tuple[str, ...], suffix: str = "") -> tuple[list[str], list[tuple[str, str]]]:
    """Left-to-right merges that assemble each word (plus ``suffix`` on its last piece)."""
    tokens: list[str] = []
    merges: list[tuple[str, str]] = []
    for word in words:
        if len(word) < 2:
            continue
        piece = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + (suffix if i == len(word) - 1 else "")
            pair = (piece, right)
            if pair not in merges:
                merges.append(pair)
            piece = piece + right
            if piece not in tokens:
                tokens.append(piece)
    return tokens, merges


def clip_tokenizer(max_length: int = 77):
    """A byte-level CLIP BPE tokenizer: specials, 256 byte chars, the same with ``</w>``, a few words."""
    from transformers import CLIPTokenizer

    chars = byte_alphabet()
    tokens = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    words, merges = _merges_for(_WORDS, suffix="</w>")
    tokens += [w for w in words if w not in tokens]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    # transformers annotates merges as list[str]; it hands them to tokenizers' BPE, which takes pairs
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)  # type: ignore[arg-type]


def t5_tokenizer(max_length: int = 512):
    """A unigram T5 tokenizer over single characters and a few words."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"-()<>|_/":
        pieces.append((ch, -3.0))
    pieces += [("▁" + w, -1.0) for w in _WORDS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def llama_tokenizer():
    """A byte-fallback Llama BPE tokenizer (``<unk>``=0, ``<s>``=1, ``</s>``=2 as OmniGen expects)."""
    from transformers import LlamaTokenizer

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁"]
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<>|_"
    tokens += [ch for ch in letters if ch not in tokens]
    words, merges = _merges_for(tuple("▁" + w for w in _WORDS))
    tokens += [w for w in words if w not in tokens]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)
