"""Build a tiny random-weight Qwen2.5-VL checkpoint for offline tests.

The folder it writes loads through the same ``Qwen2_5_VLForConditionalGeneration.from_pretrained``
and ``AutoProcessor.from_pretrained`` calls the critic uses for real weights. Its answers are
gibberish (random weights); it exists to exercise the loading, chat-template, image-processing and
``generate`` code paths in milliseconds. Deterministic: the same seed writes the same weights.

Command line: ``python -m imagerag_qwen.tiny DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imagerag_sdk.testing.tokenizers import byte_alphabet

VISION_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ["yes", "no", "Yes", "No", "the", "a", "an", "of", "image", "prompt", "concept", "caption",
         "photo", "painting", "style", "sheep", "car", "missing", "matches", "true", "false"]

# A hand-written chat template in the Qwen layout: <|im_start|>role\n…<|im_end|>\n per message,
# an image part becomes <|vision_start|><|image_pad|><|vision_end|> (the processor expands the pad).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    alphabet = byte_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    space = alphabet[ord(" ")]
    for word in WORDS:
        # merge each word left to right, with and without its leading space
        for start in (word, space + word):
            current = start[0]
            for ch in start[1:]:
                merges.append((current, ch))
                current += ch
                vocab.setdefault(current, len(vocab))
    return vocab, list(dict.fromkeys(merges))  # unique, first occurrence wins


def build_tokenizer():
    from transformers import Qwen2Tokenizer

    vocab, merges = _vocab_and_merges()
    # transformers annotates merges as list[str] and unk_token as str, but hands both to tokenizers'
    # BPE, which takes (left, right) pairs and None (no unknown token)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,  # type: ignore[arg-type]
                         eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_tokens(CHAT_SPECIALS + VISION_SPECIALS, special_tokens=True)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_qwen(directory: str | Path, *, seed: int = 0) -> str:
    """Write a tiny random Qwen2.5-VL (model + processor) into ``directory``; return its path."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out = Path(directory).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in CHAT_SPECIALS + VISION_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, window_size=56, out_hidden_size=32,
            fullatt_block_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m imagerag_qwen.tiny DIR", file=sys.stderr)
        return 2
    print(build_tiny_qwen(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
