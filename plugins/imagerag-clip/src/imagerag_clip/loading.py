"""Resolving what an embedder's options name: weights source, device, dtype, tokenizer.

Nothing here imports torch or open_clip at module level; the functions that need them import
them when called (from an embedder's ``_load``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagerag_sdk import devices, hub
from imagerag_sdk.errors import ConfigError, MissingDependencyError, install_hint

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy")
RANDOM_WEIGHTS = ("none", "random")


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from.

    kind: ``tag`` (an open_clip pretrained tag, fetched through the Hugging Face cache),
    ``hub`` (``hf-hub:org/repo``, config and weights from the hub), ``file`` (a local checkpoint),
    ``dir`` (a local folder with ``open_clip_config.json`` + weights, open_clip's ``local-dir:``),
    ``random`` (seeded random initialisation: benchmarks only).
    """

    kind: str
    value: str

    @property
    def model_name_override(self) -> str | None:
        if self.kind == "hub":
            return self.value
        if self.kind == "dir":
            return "local-dir:" + self.value
        return None


def resolve_weights(weights: str | None, model: str) -> WeightsSource:
    """Classify the ``weights`` option; a path that looks local must exist."""
    if weights is None or weights.strip().lower() in RANDOM_WEIGHTS:
        return WeightsSource("random", "seed=0")
    w = weights.strip()
    if w.startswith("hf-hub:"):
        if not w[len("hf-hub:"):]:
            raise ConfigError("weights 'hf-hub:' names no repository", hint="write hf-hub:org/repo")
        return WeightsSource("hub", w)
    explicit_dir = w.startswith("local-dir:")
    if explicit_dir:
        w = w[len("local-dir:"):]
    path = Path(w).expanduser()
    looks_local = (explicit_dir or os.sep in w or w.startswith((".", "~")) or w.lower().endswith(WEIGHT_SUFFIXES)
                   or (os.altsep is not None and os.altsep in w))
    if not looks_local and path.exists() and _is_known_tag(model, w):
        return WeightsSource("tag", w)  # a bare tag wins over a same-named entry of the cwd
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise ConfigError(f"weights folder {path} has no open_clip_config.json",
                              hint="pass the checkpoint file itself (weights: /path/model.safetensors) "
                                   "or a folder saved in open_clip's hub layout")
        return WeightsSource("dir", str(path.resolve()))
    if path.is_file():
        return WeightsSource("file", str(path.resolve()))
    if looks_local:
        raise ConfigError(f"weights file not found: {path}",
                          hint="check the path (it is read locally); for a Hugging Face repository "
                               "write hf-hub:org/repo, for an open_clip tag write e.g. 'openai'")
    return WeightsSource("tag", w)


def _is_known_tag(model: str, tag: str) -> bool:
    import open_clip

    return tag in open_clip.list_pretrained_tags_by_model(model)


def check_tag(model: str, tag: str) -> None:
    """Fail early, naming the known tags, when ``tag`` is not one of ``model``'s."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model)
    if tag not in tags:
        known = ", ".join(tags) if tags else "none (use a local file or hf-hub: id)"
        raise ConfigError(f"'{tag}' is neither an existing file nor an open_clip pretrained tag of {model}",
                          hint=f"tags of {model}: {known}")


def tag_wants_quick_gelu(model: str, tag: str) -> bool:
    """Whether open_clip's pretrained config of ``model``/``tag`` was trained with QuickGELU.

    open_clip 3.x only *warns* when such a tag is loaded into a GELU architecture (``ViT-B-32`` +
    ``openai``), which silently changes the embeddings; the embedders force QuickGELU instead."""
    import open_clip

    return bool((open_clip.get_pretrained_cfg(model, tag) or {}).get("quick_gelu"))


# -- hashing -----------------------------------------------------------------------------------
_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_digest(path: str | Path, *, length: int = 16) -> str:
    """sha256 of the file bytes (first ``length`` hex digits), cached per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is None:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        cached = h.hexdigest()
        with _hash_lock:
            _hash_cache[key] = cached
    return cached[:length]


def weights_fingerprint(src: WeightsSource, checkpoint: str | None = None) -> str:
    """The weights part of an embedder identity: content hash for local files, the name otherwise."""
    if src.kind == "file":
        return "sha256:" + file_digest(src.value)
    if src.kind == "dir":
        return "sha256:" + file_digest(checkpoint) if checkpoint else "dir:" + src.value
    return f"{src.kind}:{src.value}" if src.kind != "tag" else src.value


def config_fingerprint(path: str | Path) -> str:
    data = json.loads(Path(path).read_text())
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


# -- device and dtype --------------------------------------------------------------------------
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (x86 AVX512-BF16 / AMX, Arm BF16).

    Without it torch still runs bf16 but emulates it and is slower than fp32."""
    if os.environ.get("IMAGERAG_CPU_BF16") in ("0", "1"):
        return os.environ["IMAGERAG_CPU_BF16"] == "1"
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_device(device: str) -> str:
    return devices.resolve_device(device, component="clip")


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` → fp16 on CUDA, bf16 on a CPU with native bf16, fp32 otherwise."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "fp16"
    if device == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def import_open_clip() -> Any:
    try:
        import open_clip  # heavy: ~4 s cold
    except ImportError as exc:
        raise MissingDependencyError(f"open_clip is not installed ({exc})",
                                     hint=install_hint("imagerag-clip") + " — it brings open_clip_torch, torch and torchvision") from exc
    return open_clip


# -- tokenizer ---------------------------------------------------------------------------------
def make_tokenizer(option: str | None, model_name: str, context_length: int | None,
                   *, component: str) -> Any:
    """The tokenizer the ``tokenizer`` option names (``None``: open_clip's choice for the model).

    ``simple`` is open_clip's bundled CLIP BPE tokenizer (offline); a local folder is loaded with
    ``transformers.AutoTokenizer`` (what SigLIP needs); a ``.txt``/``.txt.gz`` file is a CLIP BPE
    merges file; a ``.model`` file is a SentencePiece (SigLIP/T5) vocabulary; ``hf-hub:org/repo``
    or ``org/repo`` is a hub tokenizer.
    """
    open_clip = import_open_clip()
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    text_cfg: dict[str, Any] = {}
    try:
        text_cfg = dict((open_clip.get_model_config(model_name) or {}).get("text_cfg") or {})
    except Exception:  # a hub config we cannot fetch: the tokenizer option must say it all
        text_cfg = {}
    kwargs = dict(text_cfg.get("tokenizer_kwargs") or {})
    ctx = context_length or text_cfg.get("context_length")
    if option is None:
        try:
            return open_clip.get_tokenizer(model_name, context_length=ctx)
        except Exception as exc:
            source = text_cfg.get("hf_tokenizer_name") or model_name
            raise ConfigError(
                f"{component}: the tokenizer of {model_name} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})",
                hint=f"it comes from the Hugging Face hub ({source}); offline, set tokenizer: "
                     f"/path/to/a/local/copy (a folder with tokenizer.json / tokenizer_config.json)"
            ) from exc
    opt = option.strip()
    if opt.lower() == "simple":
        return SimpleTokenizer(context_length=ctx or 77)
    path = Path(opt).expanduser()
    try:
        if path.is_dir():
            return HFTokenizer(str(path.resolve()), context_length=ctx,
                                         tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs)
        if path.is_file():
            name = path.name.lower()
            if name.endswith((".txt", ".txt.gz")):
                return SimpleTokenizer(bpe_path=str(path), context_length=ctx or 77)
            if name.endswith(".model"):
                from open_clip.tokenizer import SigLipTokenizer

                return SigLipTokenizer(str(path), context_length=ctx or 64)
            if name.endswith(".json"):
                return HFTokenizer(str(path.parent.resolve()), context_length=ctx,
                                             tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs)
            raise ConfigError(f"{component}: tokenizer file {path} is of an unknown kind",
                              hint="pass a folder (Hugging Face tokenizer), a .model (SentencePiece) "
                                   "or a .txt.gz (CLIP BPE) file, or 'simple'")
        if os.sep in opt and not opt.startswith("hf-hub:") and opt.count("/") != 1:
            raise ConfigError(f"{component}: tokenizer path not found: {path}")
        if opt.startswith((".", "~", "/")):
            raise ConfigError(f"{component}: tokenizer path not found: {path}")
        repo = opt[len("hf-hub:"):] if opt.startswith("hf-hub:") else opt
        return HFTokenizer(repo, context_length=ctx,
                                     tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs)
    except ConfigError:
        raise
    except ImportError as exc:
        raise MissingDependencyError(f"{component}: this tokenizer needs transformers ({exc})",
                                     hint="pip install transformers sentencepiece") from exc
    except Exception as exc:
        setting = hub.offline_setting()
        offline = f" (the hub is offline: {setting})" if setting else ""
        raise ConfigError(f"{component}: cannot load tokenizer '{opt}'{offline}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                          hint="pass a local tokenizer folder, or 'simple' for CLIP's bundled BPE") from exc
