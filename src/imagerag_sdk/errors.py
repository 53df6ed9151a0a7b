"""One error hierarchy. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class ImageRAGError(Exception):
    """Base of every error the SDK raises on purpose.

    ``hint`` is the actionable part ("pip install imagerag-sdk[flux]", "set OPENAI_API_KEY");
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


def install_hint(distribution: str) -> str:
    """The pip command that installs a first-party plugin distribution."""
    extra = DISTRIBUTION_EXTRAS.get(distribution)
    if extra:
        return f"pip install 'imagerag-sdk[{extra}]' (or pip install -e plugins/{distribution} from a checkout)"
    return f"pip install {distribution}"


DISTRIBUTION_EXTRAS = {
    "imagerag-clip": "clip",
    "imagerag-diffusers": "diffusers",
    "imagerag-openai": "openai",
    "imagerag-gemini": "gemini",
    "imagerag-anthropic": "anthropic",
    "imagerag-qwen": "qwen",
    "imagerag-bm25": "bm25",
}
