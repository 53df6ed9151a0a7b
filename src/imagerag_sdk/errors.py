"""One error hierarchy. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class ImageRAGError(Exception):
    """Base of every error the SDK raises on purpose.

    ``hint`` is the actionable part ("pip install 'imagerag-sdk[flux]'", "set OPENAI_API_KEY");
    ``str(err)`` joins message and hint in one line, which is what the CLI prints.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


class ConfigError(ImageRAGError):
    """Bad options for a component, a missing secret, an invalid value."""


class ProfileError(ConfigError):
    """A YAML profile that cannot be read or validated; names the file and the field path."""


class PluginError(ImageRAGError):
    """A plugin failed to load, or two plugins registered the same component name."""


class ComponentNotFoundError(ConfigError):
    """A profile or call names a component that no installed plugin registers."""


class MissingDependencyError(ImageRAGError):
    """An optional package or plugin distribution is not installed."""


class ProviderError(ImageRAGError):
    """A model provider (API or local VLM) failed; names the provider."""

    def __init__(self, message: str, *, provider: str, hint: str | None = None) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}", hint=hint)


class AuthenticationError(ProviderError):
    """Missing or rejected credentials."""


class RateLimitError(ProviderError):
    """The provider kept answering 429 after the configured retries."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""


class MalformedReplyError(ProviderError):
    """The provider answered 2xx, but not with a well-formed reply: a body that is not UTF-8, an
    HTML page, JSON of another shape. An *unusable answer*, not a failed call: the critic protocol
    records it (``raw``: the body as text, capped) and asks again, as for any unusable answer."""

    RAW_CAP = 2000

    def __init__(self, detail: str, *, provider: str, raw: str = "", hint: str | None = None) -> None:
        self.provider = provider
        self.detail = detail
        self.raw = raw if len(raw) <= self.RAW_CAP else raw[: self.RAW_CAP] + " …[cut]"
        ImageRAGError.__init__(self, f"malformed reply from {provider}: {detail}", hint=hint)


class CorpusError(ImageRAGError):
    """A corpus index that is missing, inconsistent, or built with another embedder."""


class PipelineError(ImageRAGError):
    """A stage of the ImageRAG loop failed; names the stage and the component."""

    def __init__(self, message: str, *, stage: str, component: str | None = None,
                 hint: str | None = None) -> None:
        self.stage = stage
        self.component = component
        where = f"stage '{stage}'" + (f" ({component})" if component else "")
        super().__init__(f"{where}: {message}", hint=hint)


def install_hint(distribution: str, *, extra: str | None = None) -> str:
    """The pip command that installs ``distribution``: ``pip install 'imagerag-sdk[EXTRA]'`` when
    the core declares an extra for it (read from the core's installed metadata; ``extra`` is the one
    to prefer), else ``pip install DISTRIBUTION``."""
    extras = core_extras_for(distribution)
    chosen = extra if extra in extras else next(iter(extras), None)
    if chosen:
        return (f"pip install 'imagerag-sdk[{chosen}]' "
                f"(or pip install -e plugins/{distribution} from a checkout)")
    return f"pip install {distribution}"


def core_extras_for(distribution: str) -> list[str]:
    """The extras of imagerag-sdk that install exactly ``distribution``, the one named like it first
    (``clip`` for imagerag-clip), from the ``Requires-Dist: X; extra == "…"`` lines of its metadata."""
    import importlib.metadata as md
    import re

    try:
        requirements = md.requires("imagerag-sdk") or []
    except md.PackageNotFoundError:
        return []
    wanted = _normalize(distribution)
    by_extra: dict[str, set[str]] = {}
    for line in requirements:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if marker and name:
            by_extra.setdefault(marker.group(1), set()).add(_normalize(name.group(1)))
    extras = sorted(e for e, names in by_extra.items() if names == {wanted})
    return sorted(extras, key=lambda e: _normalize(e) not in wanted)


def _normalize(name: str) -> str:
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))
