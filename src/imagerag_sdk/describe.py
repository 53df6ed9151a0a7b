"""Human-readable descriptions of plugins and component options (for ``imagerag plugins``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticUndefined

if TYPE_CHECKING:
    from .roles import Component


def options_of(cls: type[Component[Any]]) -> list[dict[str, Any]]:
    """Each option of a component class: the key a profile writes (``also``: other accepted
    spellings), type, default, description."""
    from .option_tables import option_key

    out = []
    for name, field in cls.Options.model_fields.items():
        key, also = option_key(name, field)
        default = field.default
        if default is PydanticUndefined:
            default = "required" if field.default_factory is None else "(computed)"
        elif hasattr(default, "get_secret_value"):
            default = "***"
        elif hasattr(default, "model_dump"):
            default = default.model_dump(mode="json")
        ann = field.annotation
        type_name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        out.append({"name": key, "also": also, "type": type_name, "default": default,
                    "description": field.description or ""})
    return out


def capabilities_of(cls: type[Component[Any]]) -> list[str]:
    """The optional capabilities ``cls`` declares (``supports_image_search``, ``can_rephrase``, …)."""
    return [flag for flag, has in cls.optional_capabilities().items() if has]


def component_table(registry) -> list:
    from rich.table import Table

    plugins = Table("plugin", "distribution", "version", "status", "components", title="Plugins")
    for p in registry.plugins:
        comps = ", ".join(f"{role}:{name}" for role, name in p.components) or "-"
        plugins.add_row(p.name, p.distribution, p.version or "-", plugin_status(p), comps)
    tables = [plugins]
    for role, regs in registry.components.items():
        ambiguous = registry.ambiguous.get(role, {})
        if not regs and not ambiguous:
            continue
        t = Table("name", "option", "type", "default", "description", title=f"{role}s")
        for name, reg in sorted(regs.items()):
            opts = options_of(reg.cls)
            if not opts:
                t.add_row(name, "-", "", "", reg.cls.description)
            for i, o in enumerate(opts):
                key = o["name"] + (f" (also {', '.join(o['also'])})" if o["also"] else "")
                t.add_row(name if i == 0 else "", key, o["type"], repr(o["default"]), o["description"])
        for name, clash in sorted(ambiguous.items()):
            t.add_row(name, "-", "", "", "AMBIGUOUS: registered by " + ", ".join(r.distribution for r in clash))
        tables.append(t)
    for table in tables:  # wrap long errors and descriptions instead of cutting them off ("…")
        for column in table.columns:
            column.overflow = "fold"
    return tables


def plugin_status(p) -> str:
    """'ok', 'BROKEN: <error>', or the names this plugin shares with another one."""
    if not p.ok:
        return f"BROKEN: {p.error}"
    if p.clashes:
        return "CLASH: " + "; ".join(p.clashes)
    return "ok"
