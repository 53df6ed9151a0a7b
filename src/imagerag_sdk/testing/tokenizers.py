"""Pieces for building tokenizers of tiny test models without downloading any files."""

from __future__ import annotations


def byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE tokenizers (GPT-2, CLIP, Qwen2) use for the
    byte values 0..255: printable Latin-1 bytes stand for themselves, the others move to code
    points from 256 up, in byte order."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    chars, shifted = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shifted))
            shifted += 1
    return chars
