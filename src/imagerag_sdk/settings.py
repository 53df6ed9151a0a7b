"""Loop settings (the ``loop:`` section of a profile)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .limits import Limits


class LoopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["captions", "concepts", "prompt", "rephrase"] = Field(
        "captions", description="What the retrieval query is: the critic's captions (the method), the "
        "bare concept names, or the prompt itself; 'rephrase' retrieves nothing and regenerates from a "
        "VLM-rephrased prompt (the paper's ablations)")
    max_concepts: int | Literal["auto"] = Field(
        "auto", description="Concepts retrieved per round; auto = the generator's reference budget "
        "(minus user images) divided by images_per_concept")
    images_per_concept: int = Field(1, ge=1, description="References kept per concept")
    candidates: int = Field(3, ge=1, description="Hits fetched per query, before the min_similarity "
                            "threshold and the reranker")
    min_similarity: float | None = Field(None, description="Drop hits scoring below this (paper: none)")
    max_rounds: int = Field(1, ge=1, le=10, description="Critique → retrieve → generate rounds; more "
                            "than 1 iterates until the critic is satisfied")
    fallback: Literal["prompt", "none"] = Field(
        "prompt", description="When the critic names no concept after its retries: retrieve by the "
        "prompt (the paper) or stop")
    on_critic_error: Literal["fail", "keep_initial"] = Field(
        "fail", description="When the critic's provider keeps failing after its retries (timeout, 5xx, "
        "429): fail the run, or keep the image made so far (the initial one) as the result and record "
        "why")
    template: str = Field("According to these examples of {examples}, generate {prompt}",
                          description="Prompt for in-context generators given references")
    example: str = Field("{caption}: {image}", description="One example inside the template; {image} "
                         "is the generator's image placeholder")
    user_caption: str = Field("the given subject", description="Caption of user (personalization) images "
                              "given without one")
    limits: Limits = Field(default_factory=Limits, description="Characters kept of each critic answer, "
                           "concept and caption; what is cut is recorded in the trace")
