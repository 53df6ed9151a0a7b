"""What every API provider plugin shares, written once; a plugin supplies only the mapping.

* :mod:`.connection` — :class:`ConnectionOptions` (api_key, base_url, timeout, max_retries;
  a plugin subclasses it with its provider name, key variables and endpoint), key lookup, the
  missing-key preflight line, key redaction, :func:`require`; :class:`SDKConnection` makes the
  client and names the errors of an SDK made like openai's and anthropic's.
* :mod:`.failures` — SDK exception → SDK error (:func:`map_error`), from a small table of the
  SDK's exception classes (:func:`sdk_error_kinds` builds it for openai-style SDKs).
* :mod:`.traffic` — :func:`record_call`: the HTTP requests one call really made and the reply it
  really got (:class:`CallRecord`), for "after 3 requests" and for malformed replies.
* :mod:`.calls` — :class:`APIProvider` / :class:`APICritic` / :class:`APIGenerator`: the call
  path (sync and async in one), the structured-output refusal and resend, :func:`usage_dict`.

Nothing here imports a provider SDK.
"""

from __future__ import annotations

from .calls import APICritic, APIGenerator, APIProvider, usage_dict
from .connection import ConnectionOptions, SDKConnection, require
from .failures import ErrorKinds, Kind, error_detail, map_error, sdk_error_kinds
from .traffic import MAX_RETRY_WAIT, CallRecord, body_problem, event_hooks, record_call, reply_error

__all__ = ["APICritic", "APIGenerator", "APIProvider", "CallRecord", "ConnectionOptions",
           "ErrorKinds", "Kind", "MAX_RETRY_WAIT", "SDKConnection", "body_problem", "error_detail",
           "event_hooks", "map_error", "record_call", "reply_error", "require", "sdk_error_kinds",
           "usage_dict"]
