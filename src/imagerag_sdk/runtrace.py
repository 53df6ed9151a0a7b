"""The run trace as typed models: what ``trace.json`` holds (docs/trace.md, docs/trace-schema.json).

The pipeline fills a :class:`RunTrace` as the run goes; :class:`~imagerag_sdk.trace.RunRecorder`
writes it to ``trace.json`` (``RunTrace.to_dict()``) as every stage starts and ends, and the report is
rendered over it. Read a run folder back with :meth:`RunTrace.load`.

Publish the JSON schema after changing a model (a test compares it)::

    python -m imagerag_sdk.runtrace --schema > docs/trace-schema.json

Bump :data:`SCHEMA_VERSION` when a field is renamed or removed or changes meaning.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 2
"""1: the untyped dict of imagerag-sdk 0.1 (the same field names); 2: these models."""


def now() -> str:
    """The current UTC time as ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _plain_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if getattr(value, "get_secret_value", None) is not None:
        return "***"
    return repr(value)


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: what a component handed over (metadata, a parsed answer, usage)
    may hold numpy scalars, paths or secrets; unknown objects become their repr, secrets ``***``."""
    return json.loads(json.dumps(value, default=_plain_default, ensure_ascii=False))


Status = Literal["running", "done", "failed", "interrupted"]
StageName = Literal["generate", "critique", "rephrase", "retrieve", "rerank"]

JSONValue = Annotated[Any, BeforeValidator(plain)]
"""Free-form data from a component, made plain JSON when recorded."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageTiming(_Record):
    """One timed stage, appended when it ends."""

    stage: StageName
    round: int = Field(description="0: the initial generation; N: round N")
    component: str | None = Field(default=None, description="The component's registered name")
    status: Status = "running"
    seconds: float = Field(default=0.0, description="Wall time of the stage")
    error: str | None = Field(default=None, description="'<ExceptionType>: <message>' when it failed")
    prompt: str | None = Field(default=None, description="generate / rephrase: the prompt sent or obtained")
    references: int | None = Field(default=None, description="generate: how many reference images were given")


class ReferenceRecord(_Record):
    """A :class:`~imagerag_sdk.types.Reference` given to the generator."""

    path: str = Field(description="Absolute path of the source image")
    caption: str = ""
    origin: Literal["retrieved", "user", "picked"] = "retrieved"
    score: float | None = None
    concept: str = ""
    corpus: str = ""


class CopiedReference(ReferenceRecord):
    """A reference copied into the run folder."""

    copied_to: str | None = Field(default=None, description="Run-relative path of the copy (references/…)")


class UsedReference(CopiedReference):
    """A retrieved reference a round generated with."""

    query: str = Field(default="", description="The retrieval query (key of the round's hits) it was chosen for")


class UserImage(_Record):
    path: str = Field(description="Absolute path of the image the user gave")
    copied_to: str | None = Field(default=None, description="Run-relative path of the copy")


class Generation(_Record):
    round: int = Field(description="0: the initial image; N: the image of round N")
    prompt: str
    seed: int
    image: str = Field(description="Run-relative file name (initial.png, round-N.png)")
    references: list[ReferenceRecord] = Field(default_factory=list)


class MissingConceptRecord(_Record):
    concept: str
    caption: str = Field(description="The stand-alone caption written to retrieve it")


class ExchangeRecord(_Record):
    """One request to a vision-language model and its raw answer."""

    stage: str = Field(description="decide | concepts | captions | fused | rephrase | rerank | clip")
    prompt: str
    answer: str
    attempt: int = 1
    temperature: float | None = None
    alternative: str | None = Field(default=None, description="What varied instead of the temperature")
    seed: int | None = None
    images: int = 0
    parsed: JSONValue = Field(default=None, description="The answer as the protocol parsed it")
    error: str | None = None
    usage: JSONValue = Field(default=None, description="Token counts as the provider reported them")
    seconds: float = 0.0


class CritiqueRecord(_Record):
    """The critic's verdict on one image (texts cut to ``loop.limits``)."""

    matches: bool
    missing: list[MissingConceptRecord] = Field(default_factory=list)
    attempts: int = 1
    gave_up: bool = False
    exchanges: list[ExchangeRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class QueryRecord(_Record):
    concept: str = Field(description="'' when retrieving by the prompt")
    caption: str
    query: str = Field(description="The text searched (the caption, the concept or the prompt per mode)")
    images: int = Field(default=1, description="References wanted for it")


class HitRecord(_Record):
    """A retrieved corpus item (:class:`~imagerag_sdk.types.Hit`)."""

    path: str
    score: float = Field(description="Similarity to the query, or the reranker's score")
    corpus: str = ""
    metadata: JSONValue = Field(default_factory=dict, description="Caption, license… from the index")
    query: str = ""
    rank: int = 0


class DroppedRecord(_Record):
    """A candidate that was not used, and why."""

    path: str
    reason: str
    score: float | None = None
    query: str = ""


class Truncation(_Record):
    """A critic text cut to ``loop.limits``; the full text is kept in a side file."""

    what: Literal["answer", "concept", "caption"]
    where: str = Field(description="The concept, or '<stage> #<attempt>' for an answer")
    original_chars: int
    kept_chars: int
    full_text: str | None = Field(default=None, description="Run-relative side file (texts/…) with the full text")


class Rephrase(_Record):
    prompt: str
    exchanges: list[ExchangeRecord] = Field(default_factory=list)


class Round(_Record):
    """One critique → retrieve → generate round."""

    round: int
    notes: list[str] = Field(default_factory=list, description="What the loop decided and why")
    critique: CritiqueRecord | None = Field(default=None, description="None when the critic failed")
    truncated: list[Truncation] = Field(default_factory=list)
    rephrase: Rephrase | None = Field(default=None, description="mode 'rephrase': the new prompt")
    fallback: bool = Field(default=False, description="The critic named no concept: retrieved by the prompt")
    queries: list[QueryRecord] = Field(default_factory=list)
    hits: dict[str, list[HitRecord]] = Field(default_factory=dict, description="Retriever hits per query")
    reranked: dict[str, list[HitRecord]] | None = Field(default=None, description="Per query after the reranker "
                                                        "(None: no reranker)")
    chosen: dict[str, str] = Field(default_factory=dict, description="Path of each chosen hit → its query")
    dropped: list[DroppedRecord] = Field(default_factory=list)
    used: list[UsedReference] = Field(default_factory=list, description="The references generated with")


class ComponentRecord(BaseModel):
    """What ``Component.describe()`` says: name, class, version, options (secrets masked)."""

    model_config = ConfigDict(extra="allow")  # describe() belongs to roles.py and may say more

    role: str
    name: str
    class_: str = Field(alias="class", description="module.Qualname of the component")
    version: str | None = None
    options: JSONValue = Field(default_factory=dict)


class Capabilities(_Record):
    max_references: int
    conditioning: Literal["in_context", "adapter", "none"]
    uses_captions: bool
    image_placeholder: str


class Budget(_Record):
    max_references: int
    user_images: int
    for_retrieval: int = Field(description="References left for retrieval after the user images")
    concepts: int = Field(description="Concepts retrieved per round")
    images_per_concept: int


class RunTrace(_Record):
    """Everything one run did, as ``trace.json`` holds it."""

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", description="Version of this format")
    status: Status = "running"
    started_at: str = Field(default_factory=now, description="UTC, ISO 8601")
    finished_at: str | None = None
    seconds: float | None = Field(default=None, description="Wall time of the whole run")
    stages: list[StageTiming] = Field(default_factory=list)
    prompt: str
    seed: int
    mode: Literal["captions", "concepts", "prompt", "rephrase", "picked"] = Field(
        description="loop.mode, or 'picked' for generate_with")
    profile: str | None = None
    settings: JSONValue = Field(default=None, description="loop settings (LoopSettings); None for generate_with")
    components: dict[str, ComponentRecord] = Field(default_factory=dict)
    capabilities: Capabilities
    budget: Budget | None = Field(default=None, description="None for generate_with")
    user_images: list[UserImage] = Field(default_factory=list)
    picked: list[CopiedReference] = Field(default_factory=list, description="generate_with: the references")
    generations: list[Generation] = Field(default_factory=list)
    rounds: list[Round] = Field(default_factory=list)
    matched: bool | None = Field(default=None, description="The critic's verdict on the last image it judged")
    final_image: str | None = Field(default=None, description="Run-relative file name of the result (final.png)")
    error: str | None = Field(default=None, description="Why the run failed or was interrupted")
    critic_error: str | None = Field(default=None, description="Why the critic failed under "
                                     "on_critic_error: keep_initial")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data with the field names of ``trace.json``."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def load(cls, path: str | Path) -> RunTrace:
        """Read ``trace.json`` (or the run folder holding it)."""
        from .errors import ConfigError

        path = Path(path)
        if path.is_dir():
            path = path / "trace.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the run trace {path}: {exc}",
                              hint="pass a run folder or its trace.json") from exc
        version = data.get("schema") if isinstance(data, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ConfigError(f"{path} is a trace of schema {version}; this imagerag-sdk reads up to "
                              f"{SCHEMA_VERSION}", hint="upgrade imagerag-sdk to read it")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise ConfigError(f"{path} is not a run trace: {where}: {first['msg']} "
                              f"({exc.error_count()} problem(s))",
                              hint="pass the trace.json of an imagerag run folder") from exc


def json_schema() -> str:
    """The JSON schema of ``trace.json``, as published in docs/trace-schema.json."""
    return json.dumps(RunTrace.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m imagerag_sdk.runtrace --schema > docs/trace-schema.json")
    sys.stdout.write(json_schema())
