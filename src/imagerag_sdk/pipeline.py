"""The ImageRAG loop (see docs/architecture.md): generate → critique → retrieve → regenerate.

Model-agnostic: it talks only to the roles. Every stage is timed and recorded in the run trace.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from PIL import Image
from pydantic import BaseModel

from .errors import AuthenticationError, ConfigError, ImageRAGError, PipelineError, ProviderError
from .images import bad_images_error, check_images
from .outputs import check_critique, check_hits, check_image, check_reranked, component_label
from .roles import Component, Critic, Generator, Reranker, Retriever
from .runtrace import (
    Budget,
    Capabilities,
    ComponentRecord,
    CopiedReference,
    CritiqueRecord,
    DroppedRecord,
    ExchangeRecord,
    Generation,
    HitRecord,
    QueryRecord,
    ReferenceRecord,
    Rephrase,
    Round,
    RunTrace,
    UsedReference,
    UserImage,
)
from .settings import LoopSettings
from .trace import RunRecorder, new_run_dir
from .types import Critique, Dropped, GeneratorCapabilities, Hit, Reference

_M = TypeVar("_M", bound=BaseModel)
Progress = Callable[[str, str], None]
"""``progress(stage, message)`` is called when a stage starts and ends."""


@dataclass
class Query:
    concept: str
    caption: str
    query: str
    images: int = 1


@dataclass
class RunResult:
    prompt: str
    image: Image.Image
    """The final image."""
    initial_image: Image.Image
    references: list[Reference] = field(default_factory=list)
    """References given to the last generation (user images first)."""
    critiques: list[Critique] = field(default_factory=list)
    matched: bool | None = None
    """The critic's verdict on the last image it judged (``None``: never asked)."""
    run_dir: Path | None = None
    trace: RunTrace = field(kw_only=True)
    """What the run did, as ``trace.json`` holds it (docs/trace.md)."""
    critic_error: str | None = None
    """Why the critic failed, when ``loop.on_critic_error: keep_initial`` kept the image instead."""


class ImageRAG:
    """One configured pipeline. Components are loaded on first use, once per process."""

    def __init__(self, generator: Generator, critic: Critic | None = None,
                 retriever: Retriever | None = None, reranker: Reranker | None = None,
                 loop: LoopSettings | dict[str, Any] | None = None, *, profile: str | None = None,
                 secrets: Iterable[str] = ()) -> None:
        self.generator = generator
        self.critic = critic
        self.retriever = retriever
        self.reranker = reranker
        self.loop = loop if isinstance(loop, LoopSettings) else LoopSettings(**(loop or {}))
        if self.loop.mode == "rephrase" and critic is not None and not critic.can_rephrase:
            from .profiles import rephrase_problem

            raise ConfigError(f"loop.mode: {rephrase_problem(critic.name or type(critic).__name__)}")
        self.profile = profile
        self.secrets = set(secrets)

    @classmethod
    def from_profile(cls, profile: Any, **loop_overrides: Any) -> ImageRAG:
        """Build from a profile name, a YAML path, or a :class:`~imagerag_sdk.profiles.Profile`."""
        from .profiles import build_pipeline

        return build_pipeline(profile, **loop_overrides)

    # -- helpers ---------------------------------------------------------------------------------
    def components(self) -> dict[str, Component]:
        return {role: c for role, c in (("generator", self.generator), ("critic", self.critic),
                                        ("retriever", self.retriever), ("reranker", self.reranker)) if c}

    def _describe(self) -> dict[str, ComponentRecord]:
        return {r: ComponentRecord.model_validate(c.describe()) for r, c in self.components().items()}

    def load(self, progress: Progress | None = None) -> ImageRAG:
        """Load every component now (otherwise each loads on first use)."""
        for role, comp in self.components().items():
            _call(progress, "load", f"{role} {comp.name}")
            with _stage_errors("load", comp):
                comp.load()
        return self

    def _require(self, comp: Component | None, role: str, why: str) -> Any:
        if comp is None:
            raise ConfigError(f"this pipeline has no {role}, which {why} needs",
                              hint=f"add a '{role}:' section to the profile")
        return comp

    def budget(self, user_images: int = 0) -> tuple[int, int]:
        """(references left for retrieval, concepts per round) given ``user_images``."""
        caps = self.generator.capabilities
        left = caps.max_references - user_images
        if left < 0:
            raise ConfigError(f"{user_images} user images given, but generator '{self.generator.name}' "
                              f"takes at most {caps.max_references} references",
                              hint="pass fewer images or use a generator with a larger budget (omnigen: 3)")
        concepts = left // self.loop.images_per_concept
        if self.loop.max_concepts != "auto":
            concepts = min(concepts, self.loop.max_concepts)
        return left, concepts

    def reference_prompt(self, prompt: str, references: Sequence[Reference]) -> str:
        """The prompt sent with references: the template for in-context generators that read
        captions, the prompt unchanged otherwise."""
        caps = self.generator.capabilities
        if not references or caps.conditioning != "in_context" or not caps.uses_captions:
            return prompt
        examples = ", ".join(
            self.loop.example.format(caption=ref.caption or self.loop.user_caption,
                                     image=caps.image_placeholder.format(i=i))
            for i, ref in enumerate(references, start=1))
        return self.loop.template.format(examples=examples, prompt=prompt)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, prompt: str, *, seed: int = 0, user_images: Sequence[str | Path | Reference] = (),
            out: str | Path | None = "runs", progress: Progress | None = None,
            run_name: str | None = None) -> RunResult:
        """Run the loop for ``prompt``; write a run folder under ``out`` (``None``: write nothing),
        named ``run_name`` when given (a new folder; by default the time and the prompt)."""
        if not prompt or not prompt.strip():
            raise ConfigError("the prompt is empty", hint="pass the text to draw")
        users = [_user_ref(u, self.loop.user_caption) for u in user_images]
        bad = check_images([u.path for u in users], what="user image")
        if bad:  # before anything is generated, and before a run folder exists
            raise bad_images_error(bad)
        left, n_concepts = self.budget(len(users))
        if users and self.critic is not None and self.loop.max_rounds > 0:
            methods = ["critique", "rephrase"] if self.loop.mode == "rephrase" else ["critique"]
            _check_takes_user_images(self.critic, methods)
        caps = self.generator.capabilities
        trace = RunTrace(prompt=prompt, seed=seed, mode=self.loop.mode, profile=self.profile,
                         settings=self.loop.model_dump(mode="json"), components=self._describe(),
                         capabilities=_caps(caps),
                         budget=Budget(max_references=caps.max_references, user_images=len(users),
                                       for_retrieval=left, concepts=n_concepts,
                                       images_per_concept=self.loop.images_per_concept))
        rec = RunRecorder(new_run_dir(out, prompt, run_name) if out is not None else None, trace, secrets=self.secrets)
        trace.user_images = [UserImage(path=u.path, copied_to=rec.copy_reference(u.path, f"user{i:02d}"))
                             for i, u in enumerate(users, 1)]
        try:
            result = self._loop(prompt, seed, users, n_concepts, rec, progress)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM under interrupts.sigterm_as_interrupt
            rec.finish("interrupted", str(exc) or "interrupted by the user")
            raise
        except ImageRAGError as exc:
            rec.finish("failed", str(exc))
            raise
        except Exception as exc:
            rec.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        rec.finish("done")
        return result

    def _generate(self, rec: RunRecorder, progress: Progress | None, round_: int, prompt: str,
                  refs: list[Reference], seed: int) -> Image.Image:
        _call(progress, "generate", f"round {round_}: {len(refs)} reference(s)")
        with rec.stage("generate", round=round_, component=self.generator.name) as st:
            with _stage_errors("generate", self.generator):
                image = self.generator.generate(prompt, refs, seed=seed)
            check_image(image, self.generator)
            name = "initial.png" if round_ == 0 else f"round-{round_}.png"
            rec.save_image(image, name)
            st.prompt, st.references = prompt, len(refs)
            rec.trace.generations.append(Generation(round=round_, prompt=prompt, seed=seed, image=name,
                                                    references=[_record(ReferenceRecord, r) for r in refs]))
        return image

    def _loop(self, prompt: str, seed: int, users: list[Reference], n_concepts: int,
              rec: RunRecorder, progress: Progress | None) -> RunResult:
        loop = self.loop
        image = self._generate(rec, progress, 0, self.reference_prompt(prompt, users), users, seed)
        result = RunResult(prompt=prompt, image=image, initial_image=image, references=list(users),
                           run_dir=rec.run_dir, trace=rec.trace)
        critic = self._require(self.critic, "critic", "the critique step")
        user_pics = [u.open() for u in users]  # shown to the critic (personalization)
        shown = {"user_images": user_pics} if user_pics else {}  # a critic written before user images works without
        for round_ in range(1, loop.max_rounds + 1):
            rnd = Round(round=round_)
            rec.trace.rounds.append(rnd)
            _call(progress, "critique", f"round {round_}")
            try:
                with rec.stage("critique", round=round_, component=critic.name):
                    with _stage_errors("critique", critic):
                        crit = critic.critique(prompt, image, max_concepts=max(n_concepts, 1), **shown)
                    check_critique(crit, critic)
            except PipelineError as exc:
                if not _keeps_image(loop.on_critic_error, exc):
                    raise
                result.critic_error = rec.trace.critic_error = rec.scrub(str(exc))
                rnd.notes.append(f"the critic failed, the image is kept (on_critic_error: keep_initial): "
                                    f"{result.critic_error}")
                break
            crit, cuts = loop.limits.apply(crit)  # retrieval uses the cut captions
            result.critiques.append(crit)
            result.matched = crit.matches
            rnd.critique = _record(CritiqueRecord, crit)
            rnd.truncated = rec.record_cuts(cuts)
            rec.trace.matched = crit.matches
            if crit.matches:
                rnd.notes.append("the critic says the image matches: nothing retrieved")
                break
            if loop.mode == "rephrase":
                with rec.stage("rephrase", round=round_, component=critic.name) as st:
                    with _stage_errors("rephrase", critic):
                        new_prompt, exchanges = critic.rephrase(prompt, image=image, critique=crit, **shown)
                    cuts = []
                    exchanges = loop.limits.apply_exchanges(exchanges, cuts)
                    rnd.truncated.extend(rec.record_cuts(cuts))
                    st.prompt = new_prompt
                    rnd.rephrase = Rephrase(prompt=new_prompt,
                                            exchanges=[_record(ExchangeRecord, x) for x in exchanges])
                image = self._generate(rec, progress, round_, self.reference_prompt(new_prompt, users), users, seed)
                result.image, result.references = image, list(users)
                continue
            if n_concepts < 1:
                rnd.notes.append("no reference budget left (user images fill it): nothing retrieved")
                break
            queries = self._queries(prompt, crit, n_concepts, rnd)
            if not queries:
                break
            refs = self._retrieve(queries, rec, rnd, round_, progress)
            if not refs:
                rnd.notes.append("no candidate reference survived: the image is kept")
                break
            for i, ref in enumerate(refs, start=1):
                copied = rec.copy_reference(ref.path, f"round{round_}-{i:02d}")
                rnd.used.append(UsedReference(**ref.to_dict(), query=rnd.chosen.get(ref.path, ""),
                                              copied_to=copied))
            all_refs = users + refs
            image = self._generate(rec, progress, round_, self.reference_prompt(prompt, all_refs), all_refs, seed)
            result.image, result.references = image, all_refs
        rec.save_image(result.image, "final.png")
        rec.trace.final_image = "final.png"
        return result

    def _queries(self, prompt: str, crit: Critique, n_concepts: int, rnd: Round) -> list[Query]:
        loop = self.loop
        per = loop.images_per_concept
        if loop.mode == "prompt":
            queries = [Query("", prompt, prompt, per * n_concepts)]
        else:
            missing = list(crit.missing)
            if len(missing) > n_concepts:
                rnd.notes.append("over the generator's budget, not retrieved: "
                                    + ", ".join(m.concept for m in missing[n_concepts:]))
                missing = missing[:n_concepts]
            queries = [Query(m.concept, m.caption, m.caption if loop.mode == "captions" else m.concept, per)
                       for m in missing]
        if not queries:
            if loop.fallback == "prompt":
                rnd.fallback = True
                rnd.notes.append("the critic named no missing concept: retrieving by the prompt")
                queries = [Query("", prompt, prompt, per)]
            else:
                rnd.notes.append("the critic named no missing concept and fallback is off")
        rnd.queries = [QueryRecord(**q.__dict__) for q in queries]
        return queries

    def _retrieve(self, queries: list[Query], rec: RunRecorder, rnd: Round, round_: int,
                  progress: Progress | None) -> list[Reference]:
        retriever = self._require(self.retriever, "retriever", "retrieval")
        loop = self.loop
        texts = [q.query for q in queries]
        _call(progress, "retrieve", f"{len(texts)} quer{'y' if len(texts) == 1 else 'ies'}")
        with rec.stage("retrieve", round=round_, component=retriever.name):
            with _stage_errors("retrieve", retriever):
                k = max(loop.candidates, max(q.images for q in queries))
                results = retriever.search(texts, k)
            results = check_hits(results, retriever, len(texts))
        rnd.hits = {q: [_record(HitRecord, h) for h in hits] for q, hits in zip(texts, results, strict=True)}
        dropped: list[Dropped] = []
        if loop.min_similarity is not None:  # on the retriever's similarity, before any reranker rescored
            kept = []
            for text, hits in zip(texts, results, strict=True):
                for h in hits:
                    if h.score < loop.min_similarity:
                        dropped.append(Dropped(h.path, f"score {h.score:.3f} below min_similarity "
                                               f"{loop.min_similarity}", h.score, text))
                kept.append([h for h in hits if h.score >= loop.min_similarity])
            results = kept
        if self.reranker is not None:
            _call(progress, "rerank", self.reranker.name)
            with rec.stage("rerank", round=round_, component=self.reranker.name):
                with _stage_errors("rerank", self.reranker):
                    results = [check_reranked(self.reranker.rerank(q, hits), hits, self.reranker) if hits else []
                               for q, hits in zip(texts, results, strict=True)]
            rnd.reranked = {q: [_record(HitRecord, h) for h in hits] for q, hits in zip(texts, results, strict=True)}
        chosen: list[Reference] = []
        seen: set[str] = set()
        for q, hits in zip(queries, results, strict=True):
            taken = 0
            for hit in hits:
                if taken >= q.images:
                    dropped.append(Dropped(hit.path, "not needed: the concept has its references",
                                           hit.score, q.query))
                elif hit.path in seen:
                    dropped.append(Dropped(hit.path, "already used for another concept", hit.score, q.query))
                else:
                    seen.add(hit.path)
                    rnd.chosen[hit.path] = q.query
                    chosen.append(Reference.from_hit(hit, concept=q.concept, caption=q.caption))
                    taken += 1
            if taken == 0:
                rnd.notes.append(f"no reference for '{q.concept or q.query}'")
        rnd.dropped = [_record(DroppedRecord, d) for d in dropped]
        return chosen

    # -- the RAGE flow: retrieve, let the caller pick, generate ------------------------------------
    def retrieve(self, text: str, *, k: int = 8) -> list[Hit]:
        """Candidates for ``text`` (reranked when the pipeline has a reranker), for a caller to pick."""
        retriever = self._require(self.retriever, "retriever", "retrieval")
        with _stage_errors("retrieve", retriever):
            hits = check_hits(retriever.search([text], k), retriever, 1)[0]
        if self.reranker is not None:
            with _stage_errors("rerank", self.reranker):
                hits = check_reranked(self.reranker.rerank(text, hits), hits, self.reranker)
        return hits

    def generate_with(self, prompt: str, picked: Sequence[Hit | Reference | str | Path], *, seed: int = 0,
                      out: str | Path | None = "runs", progress: Progress | None = None,
                      run_name: str | None = None) -> RunResult:
        """Generate ``prompt`` with references the caller picked (hits, references or image paths);
        ``out`` and ``run_name`` as for :meth:`run`."""
        refs = [_picked_ref(p) for p in picked]
        caps = self.generator.capabilities
        if len(refs) > caps.max_references:
            raise ConfigError(f"{len(refs)} references picked, generator '{self.generator.name}' takes "
                              f"at most {caps.max_references}", hint="pick fewer")
        trace = RunTrace(prompt=prompt, seed=seed, mode="picked", profile=self.profile,
                         components=self._describe(), capabilities=_caps(caps))
        rec = RunRecorder(new_run_dir(out, prompt, run_name) if out is not None else None, trace, secrets=self.secrets)
        trace.picked = [CopiedReference(**r.to_dict(), copied_to=rec.copy_reference(r.path, f"picked{i:02d}"))
                        for i, r in enumerate(refs, 1)]
        try:
            image = self._generate(rec, progress, 1, self.reference_prompt(prompt, refs), refs, seed)
            rec.save_image(image, "final.png")
            trace.final_image = "final.png"
        except BaseException as exc:
            rec.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", str(exc))
            raise
        rec.finish("done")
        return RunResult(prompt=prompt, image=image, initial_image=image, references=refs,
                         run_dir=rec.run_dir, trace=trace)


class _stage_errors:
    """Context manager turning any failure inside a stage into a :class:`PipelineError`."""

    def __init__(self, stage: str, component: Component) -> None:
        self.stage, self.component = stage, component

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc is None or isinstance(exc, (PipelineError, KeyboardInterrupt)) or not isinstance(exc, Exception):
            return False
        label = component_label(self.component)
        if isinstance(exc, ImageRAGError):
            raise PipelineError(_one_line(exc.message),
                                stage=self.stage, component=label, hint=exc.hint) from exc
        raise PipelineError(_one_line(f"{type(exc).__name__}: {exc}"), stage=self.stage, component=label,
                            hint="set IMAGERAG_RAISE_ERRORS=1 to see the traceback") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_takes_user_images(critic: Critic, methods: list[str]) -> None:
    """A run with user images needs a critic whose ``methods`` take ``user_images``."""
    for method in methods:
        params = inspect.signature(getattr(critic, method)).parameters.values()
        if not any(p.name == "user_images" or p.kind is p.VAR_KEYWORD for p in params):
            raise ConfigError(f"{component_label(critic)} cannot see user images: its {method}() takes no "
                              "'user_images'", hint="run without user images, or update the critic's plugin "
                              "(roles.Critic.critique(prompt, image, max_concepts, user_images=()))")


def _keeps_image(policy: str, exc: PipelineError) -> bool:
    """Whether ``on_critic_error`` lets the run go on without the critic after ``exc``: only
    for a provider that kept failing (timeout, 5xx, 429, connection), never a rejected key."""
    cause = exc.__cause__
    return (policy == "keep_initial" and isinstance(cause, ProviderError)
            and not isinstance(cause, AuthenticationError))


def _call(progress: Progress | None, stage: str, message: str) -> None:
    if progress is not None:
        progress(stage, message)


def _caps(caps: GeneratorCapabilities) -> Capabilities:
    return Capabilities(max_references=caps.max_references, conditioning=caps.conditioning,
                        uses_captions=caps.uses_captions, image_placeholder=caps.image_placeholder)


def _record(model: type[_M], value: Any) -> _M:
    """The trace record of a value type (``Hit``, ``Critique`` …) from its ``to_dict()``."""
    return model.model_validate(value.to_dict())


def _user_ref(item: str | Path | Reference, caption: str) -> Reference:
    """The user image as a reference (absolute path); ``run()`` checks that it decodes."""
    if isinstance(item, Reference):
        return Reference(path=str(Path(item.path).expanduser().resolve()), caption=item.caption or caption,
                         origin="user")
    return Reference(path=str(Path(item).expanduser().resolve()), caption=caption, origin="user")


def _picked_ref(item: Hit | Reference | str | Path) -> Reference:
    if isinstance(item, Hit):
        return Reference.from_hit(item, caption=item.caption or item.query, origin="picked")
    if isinstance(item, Reference):
        return item
    path = Path(item).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"picked image {path} does not exist", hint="pass the path of an image file")
    return Reference(path=str(path), caption="", origin="picked")
