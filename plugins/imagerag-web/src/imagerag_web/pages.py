"""The HTML pages of ``imagerag serve``: server-rendered shells, filled by ``static/*.js``.

Each page is a Jinja2 template (``templates/``) that carries no data of its own beyond what the URL
says (a run id, the two runs to compare); the script fetches everything else from the JSON API
under ``/api``, as any other client would. Jinja2 autoescapes, so a run id holding markup is text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Path(__file__).parent / "templates"

templates = Jinja2Templates(directory=str(TEMPLATES))
router = APIRouter()

NAV = (("/", "Search"), ("/generate", "Pick & generate"), ("/auto", "Auto"), ("/runs", "Runs"),
       ("/corpus", "Corpus"))
"""The navigation bar: (path, label)."""


def _page(request: Request, template: str, *, page: str, title: str, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"page": page, "title": title, "nav": NAV, **context})


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request) -> HTMLResponse:
    """Search by text or by an uploaded image; "more like this" on a hit."""
    return _page(request, "search.html", page="search", title="Search")


@router.get("/generate", response_class=HTMLResponse, include_in_schema=False)
def generate_page(request: Request) -> HTMLResponse:
    """The search page with selection up to the generator's reference budget, a prompt and Generate."""
    return _page(request, "search.html", page="generate", title="Pick & generate")


@router.get("/auto", response_class=HTMLResponse, include_in_schema=False)
def auto_page(request: Request) -> HTMLResponse:
    """The full loop from a prompt: critique, concepts and captions, hits, used and dropped, result."""
    return _page(request, "auto.html", page="auto", title="Auto")


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
def runs_page(request: Request) -> HTMLResponse:
    """Run folders newest first; pick two to compare."""
    return _page(request, "runs.html", page="runs", title="Runs")


@router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    """One run, drawn from its trace (the API answers 404 for an unknown id; the page says so)."""
    return _page(request, "run.html", page="run", title=f"Run {run_id}", run_id=run_id)


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare_page(request: Request, a: str = "", b: str = "") -> HTMLResponse:
    """Two runs side by side."""
    return _page(request, "compare.html", page="compare", title="Compare runs", a=a, b=b)


@router.get("/corpus", response_class=HTMLResponse, include_in_schema=False)
def corpus_page(request: Request) -> HTMLResponse:
    """What is indexed: count, embedder, last update per corpus."""
    return _page(request, "corpus.html", page="corpus", title="Corpus")
