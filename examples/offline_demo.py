"""Prepare the offline demo: tiny random-weight models, a small corpus, its index, a ``tiny`` profile.

    python examples/offline_demo.py            # then: imagerag generate "…" --profile tiny

Everything is built locally, nothing is downloaded: a tiny SDXL pipeline with a tiny IP-Adapter
(imagerag-diffusers), a tiny CLIP (imagerag-clip) that both indexes the corpus and acts as the
critic, and a corpus of captioned synthetic images. The weights are RANDOM: the loop, the index,
the adapter and the trace are real, the pictures are noise. The real profiles (``sdxl-gpt``,
``omnigen-gpt``, ``flux-gpt``, ``sdxl-qwen``) download real models instead.
Built once into ``$IMAGERAG_HOME/cache/demo`` (default ``~/.imagerag``); re-running reuses it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from imagerag_sdk.index import ingest
from imagerag_sdk.paths import cache_dir, profiles_dir
from imagerag_sdk.testing.fakes import fake_corpus

CORPUS = "tiny-demo"


def prepare() -> Path:
    from imagerag_clip.tiny import build_tiny_clip
    from imagerag_diffusers.tiny import build_tiny_sdxl

    root = cache_dir() / "demo"
    print(f"building tiny random-weight models in {root} …", file=sys.stderr)
    sdxl = build_tiny_sdxl(root / "models")
    clip = {"use": "clip", **build_tiny_clip(root / "models" / "clip")}
    corpus = fake_corpus(root / "corpus")
    report = ingest(corpus, corpus=CORPUS, embedder=clip, progress=None)
    print(report.summary(), file=sys.stderr)
    profile = {
        "name": "tiny",
        "description": "Offline demo: tiny RANDOM-weight SDXL + IP-Adapter and CLIP (noise images, real loop).",
        "requires": ["imagerag-diffusers", "imagerag-clip"],
        "generator": {"use": "sdxl", **sdxl},
        # random CLIP weights give arbitrary similarities: thresholds near 1 make the critic say
        # "does not match" and name the prompt's phrases, so every stage of the loop runs
        "critic": {"use": "clip", "embedder": clip, "threshold": 0.99, "phrase_threshold": 0.99},
        "retriever": {"use": "index", "corpus": CORPUS},
        "loop": {"mode": "captions", "max_concepts": "auto", "images_per_concept": 1, "max_rounds": 1},
    }
    target = profiles_dir() / "tiny.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# written by examples/offline_demo.py\n" + yaml.safe_dump(profile, sort_keys=False))
    print(f"profile 'tiny' written to {target}", file=sys.stderr)
    return target


if __name__ == "__main__":
    prepare()
