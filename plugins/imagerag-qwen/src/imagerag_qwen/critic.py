"""The ``qwen`` critic: Qwen2.5-VL run locally through transformers.

The chain-of-thought protocol (decide → concepts → captions, retries, fused JSON) lives in
:class:`imagerag_sdk.critique.VLMCritic`; this module only turns one request into a chat-template
prompt plus images, runs ``generate`` and decodes the new tokens. Heavy libraries (torch,
transformers) are imported inside :meth:`QwenCritic._load` and the helpers it calls.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from imagerag_sdk import devices, hub, model_cache
from imagerag_sdk.critique import VLMAnswer, VLMCritic, VLMCriticOptions, VLMRequest
from imagerag_sdk.errors import ConfigError, MissingDependencyError, ProviderError, install_hint

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
PROVIDER = "qwen"
OOM_HINT = ("lower max_pixels (e.g. 401408 = 512·28·28), use Qwen/Qwen2.5-VL-3B-Instruct, "
            "use dtype bfloat16/float16, or run on a larger GPU")


class QwenOptions(VLMCriticOptions):
    model: str = Field(DEFAULT_MODEL, min_length=1, description=(
        "Hugging Face hub id or a local folder holding a Qwen2.5-VL checkpoint and its processor"))
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda or cuda:N")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weight dtype; auto: bfloat16 on CUDA, float32 on CPU")
    max_new_tokens: int = Field(512, ge=1, le=8192, description=(
        "Most tokens generated per answer (a request asking for fewer gets fewer)"))
    min_pixels: int | None = Field(None, ge=1, description=(
        "Image processor's lower pixel bound per image (default: the checkpoint's)"))
    max_pixels: int | None = Field(None, ge=1, description=(
        "Image processor's upper pixel bound per image (default: the checkpoint's); "
        "lower it to save GPU memory"))
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = Field(
        None, description="Attention kernel passed to from_pretrained (default: transformers' choice)")
    seed: int = Field(0, description="Base of the sampling seed; attempt n of a retry ladder uses seed + n")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        v = value.strip().lower()
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("device must be auto, cpu, cuda or cuda:N")

    @model_validator(mode="after")
    def _pixels(self) -> QwenOptions:
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self


@dataclass
class LoadedModel:
    """One loaded model + processor, shared through :mod:`imagerag_sdk.model_cache` (kind
    ``"qwen"``) by every critic with the same model, device, dtype and attention kernel."""

    model: Any
    processor: Any
    device: str
    dtype: str
    lock: threading.Lock = field(default_factory=threading.Lock)


class QwenCritic(VLMCritic[QwenOptions]):
    """Local Qwen2.5-VL judge; answers in text (fused mode asks for JSON in the text)."""

    name = "qwen"
    provider: ClassVar[str] = PROVIDER
    description = "Qwen2.5-VL run locally with transformers (hub id or local folder; GPU recommended)."
    structured_output: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded_model: LoadedModel | None = None

    def takes_temperature(self) -> bool:
        return True

    def ladder(self, attempt: int) -> tuple[float | None, str | None, int | None]:
        """The core's temperature ladder, plus the attempt number as the sampling seed."""
        temperature, alternative, seed = super().ladder(attempt)
        return temperature, alternative, attempt if seed is None else seed

    # -- loading ----------------------------------------------------------------------------
    def _load(self) -> None:
        _import_stack()  # a missing library fails here, naming the extra to install
        device = devices.resolve_device(self.options.device, component="qwen")
        dtype = _resolve_dtype(self.options.dtype, device)
        source = _resolve_source(self.options.model)
        attn = self.options.attn_implementation
        self._loaded_model = model_cache.get_or_load(
            PROVIDER, (source, device, dtype, attn), lambda: _load_model(source, device, dtype, attn))

    # -- one request ------------------------------------------------------------------------
    def ask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        loaded = self._loaded_model
        assert loaded is not None
        import torch

        inputs = self._inputs(loaded, request)
        kwargs = self.generate_kwargs(request)
        seed = self.options.seed + (request.seed or 0) if kwargs["do_sample"] else None
        try:
            with loaded.lock, torch.inference_mode():
                output = _generate(torch, loaded, inputs, kwargs, seed)
        except torch.OutOfMemoryError as exc:
            raise ProviderError(f"out of GPU memory while generating with {self.options.model}",
                                provider=PROVIDER, hint=OOM_HINT) from exc
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_len:]
        text = loaded.processor.batch_decode(new_tokens[None, :], skip_special_tokens=True,
                                             clean_up_tokenization_spaces=False)[0]
        usage = {"prompt_tokens": int(prompt_len), "completion_tokens": int(new_tokens.shape[0]),
                 "total_tokens": int(prompt_len + new_tokens.shape[0])}
        return VLMAnswer(text=text.strip(), usage=usage, model=self.options.model)

    def generate_kwargs(self, request: VLMRequest) -> dict[str, Any]:
        """Arguments for ``model.generate``: greedy at temperature 0 (or none), else plain
        temperature sampling (top_k/top_p switched off so the temperature really acts)."""
        n = min(self.options.max_new_tokens, request.max_tokens or self.options.max_new_tokens)
        if request.temperature is None or request.temperature <= 0:
            return {"max_new_tokens": n, "do_sample": False, "temperature": None, "top_p": None,
                    "top_k": None}
        return {"max_new_tokens": n, "do_sample": True, "temperature": float(request.temperature),
                "top_p": 1.0, "top_k": 0}

    def _inputs(self, loaded: LoadedModel, request: VLMRequest) -> Any:
        processor = loaded.processor
        text = request.text
        if request.json_schema is not None and "json" not in text.lower():
            # the model has no constrained decoding: ask for the JSON in words (the core's fused
            # prompt already does, and is then sent exactly as the trace records it)
            text += ("\nReply with one JSON object that follows this JSON Schema, and nothing else: "
                     + json.dumps(request.json_schema, separators=(",", ":")))
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
        turns = request.messages()
        images = [img for _, _, imgs in turns for img in imgs]  # in the order the template places them
        for i, (role, turn_text, turn_images) in enumerate(turns):
            last = i == len(turns) - 1
            content = [{"type": "image"} for _ in turn_images]
            content.append({"type": "text", "text": text if last else turn_text})
            messages.append({"role": role, "content": content})
        chat = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        kwargs: dict[str, Any] = {"text": [chat], "return_tensors": "pt"}
        if images:
            kwargs["images"] = [img.convert("RGB") for img in images]
            size = self._size(processor)
            if size:
                kwargs["size"] = size
        return processor(**kwargs).to(loaded.device)

    def _size(self, processor: Any) -> dict[str, int] | None:
        o = self.options
        if o.min_pixels is None and o.max_pixels is None:
            return None
        current = dict(getattr(processor.image_processor, "size", None) or {})
        low = o.min_pixels or current.get("shortest_edge") or 56 * 56
        high = o.max_pixels or current.get("longest_edge") or 28 * 28 * 1280
        return {"shortest_edge": int(min(low, high)), "longest_edge": int(high)}


def _generate(torch: Any, loaded: LoadedModel, inputs: Any, kwargs: dict[str, Any],
              seed: int | None) -> Any:
    if seed is None:
        return loaded.model.generate(**inputs, **kwargs)
    # generate() samples from the global RNG: seed it inside a fork so the caller's state survives
    devices = [torch.device(loaded.device).index or 0] if loaded.device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return loaded.model.generate(**inputs, **kwargs)


def _import_stack() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"the qwen critic needs torch and transformers ({exc.name or exc} is missing)",
            hint=install_hint("imagerag-qwen")) from exc
    try:
        import torchvision  # noqa: F401  (Qwen2.5-VL's image processor needs it)
    except ImportError as exc:
        raise MissingDependencyError("the qwen critic needs torchvision for its image processor",
                                     hint=install_hint("imagerag-qwen") + "; install torchvision matching your torch") from exc
    return torch, transformers


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


def _looks_local(model: str) -> bool:
    return (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
            or Path(model).expanduser().exists())


def _resolve_source(model: str) -> str:
    """An absolute folder for a local path (checked), or the hub id as given."""
    if _looks_local(model):
        path = Path(model).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"qwen model folder {path} does not exist",
                              hint="pass the folder holding config.json and the processor files, "
                                   "or a hub id such as Qwen/Qwen2.5-VL-7B-Instruct")
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} holds no config.json: not a transformers checkpoint",
                              hint="save one with model.save_pretrained(path) and "
                                   "processor.save_pretrained(path)")
        return str(path)
    return model


def _load_model(source: str, device: str, dtype: str, attn: str | None) -> LoadedModel:
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    local = os.path.isdir(source)
    common: dict[str, Any] = {"local_files_only": True} if local else {}
    model_kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), **common}
    if attn:
        model_kwargs["attn_implementation"] = attn
    try:
        processor = AutoProcessor.from_pretrained(source, **common)
        # Any: transformers types `.to` as a wrapper that mypy cannot follow
        model: Any = Qwen2_5_VLForConditionalGeneration.from_pretrained(source, **model_kwargs)
        model = model.to(device).eval()
    except torch.OutOfMemoryError as exc:
        raise ProviderError(f"out of GPU memory while loading {source} ({dtype})", provider=PROVIDER,
                            hint=OOM_HINT) from exc
    except (OSError, ValueError) as exc:
        raise _load_error(source, local, exc) from exc
    return LoadedModel(model=model, processor=processor, device=device, dtype=dtype)


def _load_error(source: str, local: bool, exc: Exception) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if local:
        return ConfigError(f"cannot load a Qwen2.5-VL checkpoint from {source}: {first}",
                           hint="the folder needs the model (config.json, *.safetensors) and the "
                                "processor files (tokenizer, preprocessor_config.json, chat template)")
    offline = hub.offline_setting()
    if offline:
        return ConfigError(f"'{source}' is not in the local Hugging Face cache and {offline}",
                           hint=f"pass a local folder as model, or unset {offline.split('=')[0]} "
                                "to download it")
    return ConfigError(f"cannot load '{source}' from the Hugging Face hub: {first}",
                       hint="check the hub id and your network (HF_TOKEN for gated repos), "
                            "or pass a local folder as model")
