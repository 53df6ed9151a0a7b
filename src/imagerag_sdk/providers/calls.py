"""One provider call, written once for sync and async and for every API provider.

:class:`APIProvider` is what an API-backed component (a critic, a generator) gets from the core:
the client made at ``load()``, one async client per event loop, the missing-key preflight, the
call itself (HTTP traffic recorded, the reply checked, errors mapped, a refused structured-output
request resent once without it) and the usage dict. The plugin supplies the mapping: on its
:class:`ConnectionOptions` subclass ``make_client`` (and ``make_async_client``) and
``error_kinds``; on the component ``send`` / ``asend`` and ``to_answer``, and for a critic
``build_params`` (see :class:`APICritic`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, TypeVar

from ..critique import VO, VLMAnswer, VLMCritic, VLMRequest
from ..roles import Component, Generator, O
from .connection import ConnectionOptions
from .failures import error_detail, kind_of, map_error, status_of
from .traffic import CallRecord, body_problem, record_call, reply_error

log = logging.getLogger(__name__)
T = TypeVar("T")


class APIProvider(Component):
    """Base of a component whose ``Options`` subclass :class:`ConnectionOptions` (mixed in
    before the role class: :class:`APICritic`, :class:`APIGenerator`)."""

    provider: ClassVar[str] = "api"
    """Set from ``Options.provider`` for every subclass."""
    structure_words: ClassVar[re.Pattern[str] | None] = None
    """What a 400 / 422 says when the server refuses the request's structured-output part (a
    JSON schema, a forced tool); ``None``: never resend without it."""
    structure_refused: bool = False
    """Set (for the component's life) once the server refused structured output."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        options = getattr(cls, "Options", None)
        if isinstance(options, type) and issubclass(options, ConnectionOptions):
            cls.provider = options.provider

    @classmethod
    def preflight(cls, options: Any) -> list[str]:
        """A missing API key, found before anything loads."""
        return options.key_problems() if isinstance(options, ConnectionOptions) else []

    # -- what the plugin supplies (the client and the error table come from the options) -------
    def send(self, params: Any) -> Any:
        """Make the SDK call for ``params``; return its response."""
        raise NotImplementedError

    async def asend(self, params: Any) -> Any:
        """The async SDK call; default: :meth:`send` in a worker thread."""
        return await asyncio.to_thread(self.send, params)

    def to_answer(self, response: Any, params: Any, record: CallRecord) -> Any:
        """What the caller gets from a response (raise :func:`reply_error` when it is none)."""
        raise NotImplementedError

    def without_structure(self, params: Any) -> Any | None:
        """``params`` without their structured-output part, or ``None`` when they have none or
        the options ask for it explicitly (then a refusal is an error)."""
        return None

    # -- what the core does --------------------------------------------------------------------
    @property
    def connection(self) -> ConnectionOptions:
        """The options, as the :class:`ConnectionOptions` they must be."""
        if not isinstance(self.options, ConnectionOptions):
            raise TypeError(f"{type(self).__name__}.Options must subclass "
                            "imagerag_sdk.providers.ConnectionOptions")
        return self.options

    def _load(self) -> None:
        self.client = self.connection.make_client()
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def async_client(self) -> Any:
        """The async client of the running event loop (a client is bound to its first loop)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = self.connection.make_async_client()
        return client

    def call(self, params: Any, *, what: str | None = None) -> Any:
        """Send ``params`` and return :meth:`to_answer` of the response; SDK errors mapped."""
        async def send(p: Any) -> Any:
            return self.send(p)

        return _run_now(self._exchange(params, send, what))

    async def acall(self, params: Any, *, what: str | None = None) -> Any:
        """:meth:`call` through :meth:`asend`."""
        return await self._exchange(params, self.asend, what)

    async def _exchange(self, params: Any, send: Callable[[Any], Awaitable[Any]],
                        what: str | None) -> Any:
        """The one path of a call: sync calls drive it with a ``send`` that never suspends."""
        with record_call() as record:
            try:
                try:
                    response = await send(params)
                except Exception as exc:
                    resend = self._refused_structure(exc, params)
                    if resend is None:
                        raise
                    params = resend
                    response = await send(params)
            except Exception as exc:
                mapped = map_error(exc, options=self.connection, kinds=self.connection.error_kinds(),
                                   record=record, what=what or self.call_name(params))
                if mapped is exc:
                    raise
                raise mapped from exc
            if record.answered and body_problem(record):  # e.g. Latin-1 text decoded silently
                raise reply_error(self.provider, record)
            return self.to_answer(response, params, record)

    def call_name(self, params: Any) -> str:
        """What a call asked, for error messages: 'model <name>'."""
        model = params.get("model") if isinstance(params, dict) else None
        return f"model {model or getattr(self.options, 'model', '?')}"

    def _refused_structure(self, exc: Exception, params: Any) -> Any | None:
        """The params to resend when the server refused their structured-output part (a 400 /
        422 saying :attr:`structure_words`), structured output then off for good; else ``None``."""
        words = self.structure_words
        if words is None or kind_of(exc, self.connection.error_kinds()) != "status":
            return None
        if status_of(exc)[0] not in (400, 422) or not words.search(f"{error_detail(exc)} {exc}"):
            return None
        resend = self.without_structure(params)
        if resend is not None:
            self.structure_refused = True
            log.warning("%s: %s refused structured output; its answers are now parsed from text",
                        self.provider, self.call_name(params))
        return resend


class APICritic(APIProvider, VLMCritic[VO]):
    """A :class:`~imagerag_sdk.critique.VLMCritic` over an API: the plugin adds
    :meth:`build_params` and a ``to_answer`` that returns a :class:`VLMAnswer`."""

    def build_params(self, request: VLMRequest) -> Any:
        """The SDK call's arguments for one request."""
        raise NotImplementedError

    def ask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        return self.call(self.build_params(request))

    async def aask(self, request: VLMRequest) -> VLMAnswer:
        self.load()
        return await self.acall(self.build_params(request))


class APIGenerator(APIProvider, Generator[O]):
    """A generator over an API: ``generate`` builds the params and returns :meth:`call`."""


def usage_dict(reported: Any, *, input: str = "input_tokens", output: str = "output_tokens",
               **notes: Any) -> dict[str, Any] | None:
    """Token usage in one shape: ``input_tokens`` and ``output_tokens`` (from the provider's
    fields ``input`` / ``output``) beside every other count the provider reported, under its
    own name (``reported``: its usage object or a mapping; counts that are absent are left out),
    then the ``notes`` that are not ``None`` (e.g. ``finish_reason``). ``None`` when empty."""
    if reported is None:
        fields: Mapping[str, Any] = {}
    elif hasattr(reported, "model_dump"):
        fields = reported.model_dump(exclude_none=True)
    else:
        fields = dict(reported)
    out = {name: value for name, value in fields.items() if _is_count(value)}
    for shared, own in (("input_tokens", input), ("output_tokens", output)):
        if own in out:
            out[shared] = out[own]
    out.update({name: value for name, value in notes.items() if value is not None})
    return out or None


def _is_count(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(_is_count(v) for v in value.values())
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (its awaits end in synchronous code) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a synchronous provider call suspended: it must not await real I/O")
