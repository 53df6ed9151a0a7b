"""What every API provider's connection shares: the options (key, endpoint, timeout, retries),
the key lookup and its missing-key line, key redaction, and the client of an openai-style SDK."""

from __future__ import annotations

import copy
import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from ..errors import AuthenticationError, MissingDependencyError, install_hint
from ..roles import Options
from .traffic import event_hooks

if TYPE_CHECKING:
    from .failures import ErrorKinds


def require(module: str, distribution: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"the '{module}' package is not installed",
                                     hint=install_hint(distribution)) from exc


class ConnectionOptions(Options):
    """Where and how to reach a provider's API.

    A provider plugin subclasses it and sets the class attributes below (its name, its key
    variables, its default endpoint); it redeclares a field only to change its default or to say
    more in its description, and adds the fields that are its own (an organization id …)."""

    provider: ClassVar[str] = "api"
    """The provider's name: first in its error messages, and the critic's ``provider``."""
    key_envs: ClassVar[tuple[str, ...]] = ()
    """Environment variables read, in this order, when the ``api_key`` option is not set."""
    key_note: ClassVar[str] = ""
    """Said after the missing / rejected key hint, e.g. where keys are made."""
    endpoint: ClassVar[str] = "the provider's API"
    """The default endpoint, named in connection and timeout errors when ``base_url`` is unset."""
    access_note: ClassVar[str] = ""
    """Said after the permission-denied hint: what access a key needs."""
    honours_retry_after: ClassVar[bool] = True
    """Whether the SDK waits out a server's Retry-After (up to ``MAX_RETRY_WAIT``) before a
    retry; errors then name a longer wait as the reason the retries stopped."""

    api_key: SecretStr | None = Field(
        None, description="API key; default: the provider's key environment variable (the "
        "component's description names it). Never logged; redacted from every error message")
    base_url: str | None = Field(
        None, description="API endpoint (a proxy, a compatible server, a test server); "
        "default: the provider's public API")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP request")
    max_retries: int = Field(2, ge=0, le=10, description="Retries of one request, with "
                             "exponential backoff, on connection errors, timeouts, 408, 429 and "
                             "5xx; a Retry-After over 120 s ends the call instead of waiting")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Name this provider's key variables and endpoint in the shared fields' descriptions
        (what ``imagerag plugins`` and the docs' option tables show), unless it redeclares them."""
        super().__pydantic_init_subclass__(**kwargs)
        own = cls.__dict__.get("__annotations__", {})
        said = {"api_key": f"API key; default: {', then '.join(cls.key_envs)}. Never logged; redacted "
                           "from every error message" if cls.key_envs else None,
                "base_url": "API endpoint (a proxy, a compatible server, a test server); default: "
                            f"{cls.endpoint}" if cls.endpoint != ConnectionOptions.endpoint else None}
        for name, description in said.items():
            if description and name not in own:
                field = copy.copy(cls.__pydantic_fields__[name])
                field.description = description
                cls.__pydantic_fields__[name] = field

    # -- the key -------------------------------------------------------------------------------
    @classmethod
    def key_hint(cls, valid: bool = False) -> str:
        """How to give a key: 'set OPENAI_API_KEY (or api_key: {$env: …} in the profile); …'."""
        first, *others = cls.key_envs or ("the provider's API key variable",)
        also = f" (or {' or '.join(others)})" if others else ""
        hint = (f"set {'a valid ' if valid else ''}{first}{also}, or api_key: {{$env: {first}}} "
                "in the profile")
        return f"{hint}; {cls.key_note}" if cls.key_note else hint

    def resolve_key(self) -> str:
        """The key from the option, else the first set variable of :attr:`key_envs`;
        :class:`AuthenticationError` saying how to give one when there is none."""
        key = self.api_key.get_secret_value() if self.api_key is not None else ""
        for name in self.key_envs:
            key = key or os.environ.get(name, "")
        if not key:
            raise AuthenticationError("no API key given", provider=self.provider, hint=self.key_hint())
        return key

    def key_problems(self) -> list[str]:
        """The components' preflight: the missing-key line when neither the option nor the
        environment gives a key (known without importing the SDK); ``[]`` otherwise."""
        try:
            self.resolve_key()
        except AuthenticationError as exc:
            return [str(exc)]
        return []

    def redact(self, text: str) -> str:
        """``text`` with the key (when there is one) replaced by ``<redacted>``."""
        try:
            key = self.resolve_key()
        except AuthenticationError:
            return text
        return text.replace(key, "<redacted>") if key in text else text

    @property
    def where(self) -> str:
        """The endpoint, for messages: ``base_url`` or the provider's default."""
        return self.base_url or self.endpoint

    # -- a client (what the plugin supplies) -----------------------------------------------------
    def make_client(self) -> Any:
        """The provider SDK's client for these options (import the SDK here, never at module
        import); its HTTP client must carry :func:`~imagerag_sdk.providers.event_hooks`."""
        raise NotImplementedError(f"{type(self).__name__} makes no client")

    def make_async_client(self) -> Any:
        """The SDK's async client; the component makes one per event loop."""
        raise NotImplementedError(f"{type(self).__name__} makes no async client")

    def error_kinds(self) -> ErrorKinds:
        """The SDK's exception classes → kinds (:mod:`imagerag_sdk.providers.failures`)."""
        raise NotImplementedError(f"{type(self).__name__} names no error kinds")

    def client_kwargs(self) -> dict[str, Any]:
        """``api_key``, ``timeout``, ``max_retries`` and (when set) ``base_url``: the arguments
        the openai and anthropic clients (and clients generated like them) take."""
        kwargs: dict[str, Any] = {"api_key": self.resolve_key(), "timeout": self.timeout,
                                  "max_retries": self.max_retries}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return kwargs



class SDKConnection(ConnectionOptions):
    """Connection options for an SDK made like the openai and anthropic ones: a client class
    taking ``api_key`` / ``base_url`` / ``timeout`` / ``max_retries`` / ``http_client`` (an httpx
    client with ``event_hooks``), an async twin, and exceptions with the usual names
    (:func:`~imagerag_sdk.providers.sdk_error_kinds`). The plugin names them; nothing to write."""

    sdk: ClassVar[str] = ""
    """The SDK's module, imported when a component loads (e.g. "openai")."""
    distribution: ClassVar[str] = ""
    """The plugin distribution whose install brings the SDK (for the missing-package hint)."""
    client_class: ClassVar[str] = ""
    async_client_class: ClassVar[str] = ""
    base_error: ClassVar[str] = ""
    """The SDK's root exception class (any other failure of the SDK)."""

    def client_extra(self) -> dict[str, Any]:
        """More arguments for the client (e.g. an organization id)."""
        return {}

    def _client(self, is_async: bool) -> Any:
        module = require(self.sdk, self.distribution)
        client_cls = getattr(module, self.async_client_class if is_async else self.client_class)
        http_cls = module.DefaultAsyncHttpxClient if is_async else module.DefaultHttpxClient
        return client_cls(**self.client_kwargs(), **self.client_extra(),
                          http_client=http_cls(event_hooks=event_hooks(is_async=is_async)))

    def make_client(self) -> Any:
        return self._client(is_async=False)

    def make_async_client(self) -> Any:
        return self._client(is_async=True)

    def error_kinds(self) -> ErrorKinds:
        from .failures import sdk_error_kinds

        return sdk_error_kinds(require(self.sdk, self.distribution), self.base_error)
