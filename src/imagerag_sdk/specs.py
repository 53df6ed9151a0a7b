"""``{use: <name>, <option>: …}``: how profiles (and options of other components) name a component."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .roles import Component


class ComponentSpec(BaseModel):
    """A registered component name plus its options (validated against the component's own
    ``Options`` model when it is built; unknown options are errors then)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    use: str = Field(..., min_length=1, description="Registered name of the component")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, role: str) -> Component:
        """The (process-cached) component this spec names; secrets must already be resolved."""
        from .plugins import get_registry

        return get_registry().build(role, self.use, self.options())
