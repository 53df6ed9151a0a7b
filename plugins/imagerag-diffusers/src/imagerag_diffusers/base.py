"""What the three diffusers generators share: options, device/dtype, the loaded pipeline (kept in
the core's process-wide :mod:`imagerag_sdk.model_cache` under the generator's name), seeds, and
turning out-of-memory into an error that says what to change."""

from __future__ import annotations

import random
import threading
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from PIL import Image
from pydantic import AliasChoices, Field

from imagerag_sdk import devices, model_cache
from imagerag_sdk.errors import ImageRAGError
from imagerag_sdk.roles import Generator, Options
from imagerag_sdk.types import Reference

from .loading import import_diffusers, is_oom, oom_error, resolve_source

DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16"}


@dataclass
class LoadedPipeline:
    """A loaded pipeline plus the parts derived from it (e.g. an image-conditioned FLUX pipeline
    made with ``from_pipe``). ``lock`` serialises calls: diffusers pipelines hold per-call state
    (the IP-Adapter scale, progress bars, offload hooks) and are not safe to call concurrently."""

    pipe: Any
    device: str
    dtype: str
    parts: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


STEPS_ALIAS = AliasChoices("steps", "num_inference_steps")
GUIDANCE_ALIAS = AliasChoices("guidance", "guidance_scale")
"""diffusers' own argument names are accepted too (``guidance_scale: 2.5``)."""


class DiffusersOptions(Options):
    """Options every diffusers generator takes. Subclasses change the defaults; ``model``, ``steps``
    and ``guidance`` are typed for all of them: FLUX's ``None`` picks a value per model."""

    model: str | None = Field(..., description="Pipeline weights: a Hugging Face hub id (owner/name) or a "
                                        "local folder holding model_index.json")
    variant: str | None = Field(None, description="Weight variant to load, e.g. 'fp16' (hub repos that "
                                                  "ship one); None loads the default files")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                        description="auto (CUDA if available, else MPS, else CPU), cpu, cuda, cuda:N, mps")
    dtype: Literal["auto", "float32", "float16", "bfloat16", "fp32", "fp16", "bf16"] = Field(
        "auto", description="Weights dtype; auto = the model's half precision on a GPU, float32 on CPU")
    cpu_offload: bool = Field(False, description="enable_model_cpu_offload(): keep only the running "
                                                 "component on the GPU (less memory, slower); GPU only")
    steps: int | None = Field(30, ge=1, le=1000, validation_alias=STEPS_ALIAS, description="Denoising steps")
    guidance: float | None = Field(5.0, ge=0.0, validation_alias=GUIDANCE_ALIAS,
                            description="Classifier-free guidance scale")
    width: int = Field(1024, ge=16, le=4096, multiple_of=16, description="Output width in pixels")
    height: int = Field(1024, ge=16, le=4096, multiple_of=16, description="Output height in pixels")
    seed: int | None = Field(None, ge=0, description="Seed used when a call gives none; None draws a "
                                                     "random one (recorded in the image's info)")


DO = TypeVar("DO", bound=DiffusersOptions)
"""A diffusers generator's options: :class:`DiffusersOptions` or a subclass of it."""


class DiffusersGenerator(Generator[DO]):
    """Base class: loads (or reuses) the process-wide pipeline and runs one call on it."""

    extra: ClassVar[str] = "diffusers"
    """The imagerag-sdk extra that installs what this generator needs."""
    gpu_dtype: ClassVar[str] = "float16"
    """Half precision used on a GPU when ``dtype: auto``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._entry: LoadedPipeline | None = None

    # -- loading -------------------------------------------------------------------------------
    def _load(self) -> None:
        sources = self.sources()  # a bad local path fails here, before the slow imports
        torch, _ = import_diffusers(self.extra)
        device = self.resolve_device(torch)
        dtype = self.resolve_dtype(device)
        if self.options.cpu_offload and device == "cpu":
            warnings.warn(f"{self.name}: cpu_offload has no effect on the CPU; ignored", stacklevel=2)
        key = (tuple(sorted(sources.items())), *self.cache_key(), device, dtype, self.offloading(device))
        self._entry = model_cache.get_or_load(type(self).name, key,
                                              lambda: self._build_guarded(device, dtype))

    def _build_guarded(self, device: str, dtype: str) -> LoadedPipeline:
        try:
            return self.build(device, dtype)
        except ImageRAGError:
            raise
        except Exception as exc:
            if is_oom(exc):
                raise oom_error(exc, self.name) from exc
            raise

    def resolve_device(self, torch: Any) -> str:
        return devices.resolve_device(self.options.device, component=self.name)

    def resolve_dtype(self, device: str) -> str:
        if self.options.dtype == "auto":
            return "float32" if device == "cpu" else self.gpu_dtype
        return DTYPES[self.options.dtype]

    def offloading(self, device: str) -> bool:
        return bool(self.options.cpu_offload) and device != "cpu"

    def cache_key(self) -> tuple[Hashable, ...]:
        """Load settings besides the (resolved) sources that identify the loaded pipeline; never
        per-call settings such as steps or scale, so instances differing only in those share it."""
        return (self.options.variant,)

    def sources(self) -> dict[str, str]:
        """Every weight source, resolved (absolute local folders or hub ids); ConfigError if bad."""
        return {"model": resolve_source(self.options.model, f"{self.name} model")}

    def build(self, device: str, dtype: str) -> LoadedPipeline:  # pragma: no cover - abstract
        raise NotImplementedError

    def place(self, pipe: Any, device: str) -> None:
        """Move a freshly loaded pipeline to its device, or enable model CPU offload."""
        if self.offloading(device):
            pipe.enable_model_cpu_offload(device=device)
        elif device != "cpu":  # from_pretrained already loads onto the CPU
            pipe.to(device)

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (loads it on first access)."""
        self.load()
        assert self._entry is not None
        return self._entry.pipe

    @property
    def entry(self) -> LoadedPipeline:
        self.load()
        assert self._entry is not None
        return self._entry

    # -- generation ----------------------------------------------------------------------------
    def generate(self, prompt: str, references: Sequence[Reference] = (), *,
                 seed: int | None = None) -> Image.Image:
        references = list(references)
        limit = self.capabilities.max_references
        if len(references) > limit:
            raise ImageRAGError(f"{self.name}: {len(references)} references given, it takes at most {limit}",
                                hint="the pipeline trims references to the generator's budget")
        entry = self.entry
        if seed is None:
            seed = self.options.seed if self.options.seed is not None else random.randrange(2**31)
        with entry.lock:
            try:
                image = self.run(entry, prompt, references, self.torch_generator(entry, seed))
            except ImageRAGError:
                raise
            except Exception as exc:
                if is_oom(exc):
                    raise oom_error(exc, self.name) from exc
                raise
        image.info["imagerag:seed"] = str(seed)
        image.info["imagerag:generator"] = self.name
        return image

    def torch_generator(self, entry: LoadedPipeline, seed: int) -> Any:
        """A ``torch.Generator`` on the device the pipeline computes on, seeded."""
        import torch

        device = entry.device if entry.device != "mps" else "cpu"  # MPS generators are unreliable
        return torch.Generator(device=device).manual_seed(int(seed))

    def run(self, entry: LoadedPipeline, prompt: str, references: list[Reference],
            generator: Any) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def first_image(output: Any) -> Image.Image:
        images = output.images if hasattr(output, "images") else output[0]
        image = images[0]
        if not isinstance(image, Image.Image):
            raise ImageRAGError(f"the pipeline returned {type(image).__name__}, expected a PIL image")
        return image
