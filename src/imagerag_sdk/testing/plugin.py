"""The ``testing`` plugin: the core's test doubles and the ``fake`` profile that runs them.

Shipped inside imagerag-sdk and found like any plugin, through the core's own entry point
(``[project.entry-points.imagerag] testing = "imagerag_sdk.testing.plugin"``), so
``imagerag plugins`` lists the fakes under ``testing`` and ``IMAGERAG_LOAD_PLUGINS`` can leave them
out. The fakes need no model and no network: the ``fake`` profile runs the whole loop offline.
"""

from __future__ import annotations

from importlib import resources

from ..hookspecs import hookimpl
from . import colour, fake_embedder, fakes


@hookimpl
def register_generators(register):
    register(fakes.FakeGenerator)


@hookimpl
def register_critics(register):
    register(fakes.FakeCritic)
    register(fakes.ScriptedCritic)


@hookimpl
def register_embedders(register):
    register(fake_embedder.FakeEmbedder)


@hookimpl
def register_retrievers(register):
    register(fakes.FakeRetriever)


@hookimpl
def register_rerankers(register):
    register(fakes.FakeReranker)


@hookimpl
def register_scorers(register):
    register(colour.ColourScorer)


@hookimpl
def register_profiles(register):
    register(resources.files(__package__) / "profiles" / "fake.yaml")
