"""Plugin hooks (pluggy, project name ``imagerag``).

A plugin is a module with functions marked ``@hookimpl``, found through the entry-point group
``imagerag``. Each ``register_<role>s`` hook receives ``register``; call it once per component
class: ``register(MyGenerator)`` (the class's ``name`` is the name profiles use) or
``register(MyGenerator, name="alias")``. Specs only ever gain arguments. A ``@hookimpl`` whose
name matches no spec here (a misspelling) marks its plugin broken, unless it is
``@hookimpl(optionalhook=True)``.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("imagerag")
hookimpl = pluggy.HookimplMarker("imagerag")


@hookspec
def register_generators(register):
    """Register :class:`~imagerag_sdk.roles.Generator` subclasses (text-to-image models)."""


@hookspec
def register_critics(register):
    """Register :class:`~imagerag_sdk.roles.Critic` subclasses (image–prompt judges)."""


@hookspec
def register_embedders(register):
    """Register :class:`~imagerag_sdk.roles.Embedder` subclasses (text/image encoders)."""


@hookspec
def register_retrievers(register):
    """Register :class:`~imagerag_sdk.roles.Retriever` subclasses (corpus search)."""


@hookspec
def register_rerankers(register):
    """Register :class:`~imagerag_sdk.roles.Reranker` subclasses (reorder candidate hits)."""


@hookspec
def register_scorers(register):
    """Register :class:`~imagerag_sdk.roles.Scorer` subclasses (evaluation metrics for ``imagerag eval``)."""


@hookspec
def register_profiles(register):
    """Register the YAML profiles this plugin ships (the pipelines its components run).

    Call ``register(path)`` once per profile file inside your package, e.g.
    ``register(importlib.resources.files(__package__) / "profiles" / "my-gpt.yaml")`` (the file's
    stem is the profile's name), or ``register(profile)`` with a
    :class:`~imagerag_sdk.profiles.Profile`. A profile in the user's profile directory shadows one
    of the same name a plugin ships; two plugins shipping the same name make it ambiguous (recorded
    on both, like a component clash). A profile that needs other plugins says so in ``requires:``
    (their distribution names), so a missing one reads as what to install.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``imagerag`` CLI; ``cli`` is the root ``click.Group``."""


@hookspec
def heavy_imports():
    """Return the top-level modules this plugin imports only when a component loads (e.g.
    ``["open_clip"]``): :func:`imagerag_sdk.testing.contracts.assert_imports_light` fails when
    importing the core, or a plugin, pulls one of them in."""


REGISTRATION_HOOKS = {
    "generator": "register_generators",
    "critic": "register_critics",
    "embedder": "register_embedders",
    "retriever": "register_retrievers",
    "reranker": "register_rerankers",
    "scorer": "register_scorers",
}
