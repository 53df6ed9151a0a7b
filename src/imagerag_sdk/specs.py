"""``{use: <name>, <option>: …}``: how profiles (and options of other components) name a component.

An option that names another component is typed with the spec of that component's role
(``embedder: EmbedderSpec``, ``critic: CriticSpec``): the profile check then validates the nested
options against that role's component, whatever the option is called. The YAML is the same
``{use: …, …}`` mapping for every role.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .roles import Component


class ComponentSpec(BaseModel):
    """A registered component name plus its options (validated against the component's own
    ``Options`` model when it is built; unknown options are errors then)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: ClassVar[str | None] = None
    """The role the named component fills; ``None`` for a spec of any role (the caller says)."""

    use: str = Field(..., min_length=1, description="Registered name of the component")

    @model_validator(mode="before")
    @classmethod
    def _from_other_spec(cls, value: Any) -> Any:
        """A spec of another class (``ComponentSpec`` given where an ``EmbedderSpec`` is declared)."""
        if isinstance(value, ComponentSpec) and not isinstance(value, cls):
            return {"use": value.use, **value.options()}
        return value

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, role: str | None = None, *, recorded: Mapping[str, Any] | None = None) -> Component[Any]:
        """The (process-cached) component this spec names; secrets must already be resolved.
        ``recorded``: a corpus's record of how the name was resolved (see :mod:`.resolutions`)."""
        from .plugins import build_component

        role = role or self.role
        if role is None:
            raise TypeError(f"{type(self).__name__} has no role: pass build(role)")
        return build_component(role, self.use, self.options(), recorded=recorded)


class GeneratorSpec(ComponentSpec):
    role = "generator"


class CriticSpec(ComponentSpec):
    role = "critic"


class EmbedderSpec(ComponentSpec):
    role = "embedder"


class RetrieverSpec(ComponentSpec):
    role = "retriever"


class RerankerSpec(ComponentSpec):
    role = "reranker"


def nested_specs(options: BaseModel) -> Iterator[tuple[str, ComponentSpec]]:
    """``(field path, spec)`` of every component ``options`` names through a role's spec type
    (inside lists and mappings too); plain ``ComponentSpec`` values carry no role and are left out."""

    def walk(value: Any, where: str) -> Iterator[tuple[str, ComponentSpec]]:
        if isinstance(value, ComponentSpec):
            if value.role is not None:
                yield where, value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                yield from walk(item, f"{where}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{where}.{key}")

    for name in type(options).model_fields:
        yield from walk(getattr(options, name), name)
