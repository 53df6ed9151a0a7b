"""Weight sources (hub id or local folder), heavy imports and error translation.

Everything here that touches torch / diffusers imports it inside a function, so importing this
module stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagerag_sdk import errors, hub
from imagerag_sdk.errors import ConfigError, ImageRAGError, MissingDependencyError

PIPELINE_LAYOUT = ("a diffusers pipeline folder holds model_index.json and one subfolder per component "
                   "(as written by save_pretrained or `hf download`)")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def install_hint(extra: str) -> str:
    return errors.install_hint("imagerag-diffusers", extra=extra)


def import_diffusers(extra: str) -> tuple[Any, Any]:
    """``(torch, diffusers)``, or :class:`MissingDependencyError` naming the extra to install."""
    try:
        import diffusers
        import torch
        import transformers  # noqa: F401  (every pipeline here needs it)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the '{extra}' generator needs {exc.name or 'torch/diffusers/transformers'}",
            hint=install_hint(extra)) from exc
    return torch, diffusers


def diffusers_class(diffusers: Any, name: str, extra: str) -> Any:
    """``getattr(diffusers, name)`` with an upgrade hint when this diffusers lacks it."""
    try:
        return getattr(diffusers, name)
    except (AttributeError, ImportError) as exc:
        raise MissingDependencyError(
            f"diffusers {getattr(diffusers, '__version__', '?')} has no {name}",
            hint=f"pip install -U 'diffusers>=0.35' ({install_hint(extra)})") from exc


def dtype_kwarg(diffusers: Any, torch_dtype: Any) -> dict[str, Any]:
    """``{"dtype": …}`` for diffusers that take it (0.42+), else the older ``{"torch_dtype": …}``."""
    utils = getattr(getattr(diffusers, "pipelines", None), "pipeline_utils", None)
    return {"dtype" if hasattr(utils, "_resolve_dtype") else "torch_dtype": torch_dtype}


def looks_like_path(value: str) -> bool:
    return (value.startswith(("/", "./", "../", "~", "\\")) or value in (".", "..")
            or os.path.isabs(value) or value.count("/") > 1 or "\\" in value)


def resolve_source(value: str | None, what: str) -> str:
    """A local folder as an absolute path, or a hub id as given; a clear error otherwise.

    A path that does not exist is refused here, before diffusers would take it for a hub id
    (and, without ``HF_HUB_OFFLINE``, retry the network for a long time)."""
    value = (value or "").strip()
    if not value:
        raise ConfigError(f"{what}: empty model name", hint="give a hub id (owner/name) or a local folder")
    local = Path(value).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ConfigError(f"{what}: {local} is a file, not a folder",
                              hint="point at the folder holding model_index.json / config.json")
        return str(local.resolve())
    if looks_like_path(value):
        raise ConfigError(f"{what}: local folder {local} does not exist",
                          hint="download the weights there first (`hf download <repo> --local-dir DIR`) "
                               "or give a hub id such as 'owner/name'")
    if not _HUB_ID.match(value):
        raise ConfigError(f"{what}: '{value}' is neither an existing local folder nor a hub id",
                          hint="hub ids look like 'owner/name'; local folders must exist")
    return value


def oom_error(exc: BaseException, generator: str) -> ImageRAGError:
    return ImageRAGError(
        f"{generator}: out of GPU memory ({str(exc).splitlines()[0] if str(exc) else 'OOM'})",
        hint="set cpu_offload: true, lower width/height, keep dtype auto (fp16/bf16 on GPU), "
             "or free the GPU from other processes")


def is_oom(exc: BaseException) -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextlib.contextmanager
def translate_errors(what: str, source: str, *, extra: str, generator: str,
                     layout: str | None = None) -> Iterator[None]:
    """Turn loading failures into SDK errors that say how to fix them (the cause stays chained)."""
    try:
        yield
    except ImageRAGError:
        raise
    except ImportError as exc:
        raise MissingDependencyError(f"{generator}: loading {what} needs {exc.name or exc}",
                                     hint=install_hint(extra)) from exc
    except Exception as exc:  # classified below, re-raised as an SDK error, never dropped
        if is_oom(exc):
            raise oom_error(exc, generator) from exc
        name = type(exc).__name__
        first = (str(exc).strip().splitlines() or [name])[0]
        if len(first) > 240:
            first = first[:237] + "..."
        if name == "GatedRepoError":
            raise ConfigError(f"{what}: '{source}' is a gated repository",
                              hint=f"accept its license on https://huggingface.co/{source} and run "
                                   "`hf auth login` (or set HF_TOKEN)") from exc
        if name == "RepositoryNotFoundError":
            raise ConfigError(f"{what}: no model '{source}' on the Hugging Face hub",
                              hint="check the spelling, or give a local folder") from exc
        if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or (
                hub.offline() and not Path(source).exists()):
            raise ConfigError(f"{what}: '{source}' is not in the local cache and the hub is offline "
                              f"({first})",
                              hint="download it once with network access, or point at a local "
                                   "folder") from exc
        if isinstance(exc, (OSError, ValueError, KeyError, TypeError, RuntimeError)):
            raise ConfigError(f"{what}: cannot load from '{source}': {name}: {first}",
                              hint=layout or PIPELINE_LAYOUT) from exc
        raise
