"""Tolerant parsers for vision-language model answers. None of them raises on any string."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•·–—+>]+|\(?\d{1,3}[.):\]]|\(?[a-zA-Z][.)\]](?=\s))\s*")
_YES = re.compile(r"\b(yes|yeah|yep|true|correct|matches|does match|it does)\b", re.I)
_NO = re.compile(r"\b(no|nope|false|incorrect|does not|doesn't|do not|don't|not match|mismatch"
                 r"|fails to|missing)\b", re.I)
_NONE_WORDS = {"none", "nothing", "n/a", "na", "no", "nil", "null", "-", "no missing concepts",
               "nothing is missing", "none missing"}
_REFUSAL = re.compile(r"\b(unable to|cannot|can't|can not|sorry|as an ai)\b", re.I)
_HEADING = re.compile(r"^[^:]{0,60}:\s*$")


def strip_fences(text: str) -> str:
    """The content of the first fenced code block, or the text itself."""
    m = _FENCE.search(text or "")
    return m.group(1).strip() if m else (text or "").strip()


def parse_json_object(text: str) -> Any | None:
    """A JSON value found in ``text`` (fenced, bare, or embedded in prose), else ``None``."""
    if not isinstance(text, str) or not text.strip():
        return None
    candidates = [strip_fences(text), text.strip()]
    for cand in candidates:
        try:
            return json.loads(cand)
        except (ValueError, RecursionError):
            pass
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            try:
                return json.loads(text[start:end + 1])
            except (ValueError, RecursionError):
                continue
    return None


def parse_yes_no(text: str) -> bool | None:
    """``True`` for yes, ``False`` for no, ``None`` when the answer says neither.

    Reads JSON answers (``{"matches": true}``, ``{"answer": "no"}``), markdown emphasis, and prose;
    the first yes-like or no-like word wins."""
    if not isinstance(text, str):
        return None
    data = parse_json_object(text)
    if isinstance(data, dict):
        for key in ("matches", "match", "answer", "result", "aligned"):
            if key in data:
                val = data[key]
                if isinstance(val, bool):
                    return val
                if isinstance(val, str):
                    return parse_yes_no(val)
    elif isinstance(data, bool):
        return data
    clean = re.sub(r"[*_`#\"']", " ", text)
    yes, no = _YES.search(clean), _NO.search(clean)
    if yes and no:
        return yes.start() < no.start()
    if yes:
        return True
    if no:
        return False
    return None


def _clean_item(line: str) -> str:
    item = _BULLET.sub("", line, count=1).strip()
    item = re.sub(r"^[*_`\"'“”]+|[*_`\"'“”]+$", "", item).strip()
    return item.rstrip(".;,").strip()


def parse_list(text: str, *, limit: int | None = None) -> list[str]:
    """Items of a list answer: JSON arrays, bullets, numbering, one per line or comma-separated.

    Headings ("Missing concepts:"), empty answers, "none" and refusals give ``[]``."""
    if not isinstance(text, str) or not text.strip():
        return []
    data = parse_json_object(text)
    items: list[str] = []
    if isinstance(data, dict):
        for key in ("missing", "concepts", "missing_concepts", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if isinstance(data, list):
        for el in data:
            if isinstance(el, str):
                items.append(el)
            elif isinstance(el, dict):
                val = el.get("concept") or el.get("name") or el.get("text")
                if isinstance(val, str):
                    items.append(val)
    else:
        body = strip_fences(text)
        lines = [ln for ln in body.splitlines() if ln.strip()]
        bulleted = [ln for ln in lines if _BULLET.match(ln)]
        if bulleted:
            lines = bulleted
        elif _REFUSAL.search(body):
            return []  # "Sorry, I cannot tell what is missing." is not a list of concepts
        elif len(lines) == 1:
            lines = re.split(r"\s*[;,]\s*|\s+and\s+(?=\w)", lines[0].split(":", 1)[-1])
        for ln in lines:
            if _HEADING.match(ln.strip()) and not _BULLET.match(ln):
                continue
            items.append(ln)
    out: list[str] = []
    seen: set[str] = set()
    for raw in items:
        item = _clean_item(str(raw))
        low = item.lower()
        if not item or low in _NONE_WORDS or _REFUSAL.search(item) or len(item) > 200:
            continue
        if low not in seen:
            seen.add(low)
            out.append(item)
    return out[:limit] if limit is not None else out


def parse_captions(text: str, concepts: list[str]) -> dict[str, str]:
    """Map each concept to its caption from a JSON object/array or ``concept: caption`` lines
    (or one caption per line in the concepts' order). Concepts without a caption are left out."""
    result: dict[str, str] = {}
    if not isinstance(text, str) or not concepts:
        return result
    data = parse_json_object(text)
    lower = {c.lower(): c for c in concepts}
    if isinstance(data, dict):
        if isinstance(data.get("captions"), (list, dict)):
            data = data["captions"]
    if isinstance(data, dict):
        for key, val in data.items():
            c = lower.get(str(key).lower().strip())
            if c and isinstance(val, str) and val.strip():
                result[c] = val.strip()
        return result
    if isinstance(data, list):
        for i, el in enumerate(data):
            if isinstance(el, dict):
                c = lower.get(str(el.get("concept", "")).lower().strip())
                cap = el.get("caption")
                if c is None and i < len(concepts):
                    c = concepts[i]
                if c and isinstance(cap, str) and cap.strip():
                    result[c] = cap.strip()
            elif isinstance(el, str) and i < len(concepts) and el.strip():
                result[concepts[i]] = el.strip()
        return result
    lines = [_clean_item(ln) for ln in strip_fences(text).splitlines() if ln.strip()]
    lines = [ln for ln in lines if ln and not _HEADING.match(ln)]
    unmatched: list[str] = []
    for ln in lines:
        key, sep, rest = ln.partition(":")
        c = lower.get(key.strip().strip("*\"'").lower()) if sep else None
        if c and rest.strip():
            result[c] = _clean_item(rest)
        else:
            unmatched.append(ln)
    if not result and len(unmatched) == len(concepts):
        result = {c: cap for c, cap in zip(concepts, unmatched, strict=True) if not _REFUSAL.search(cap)}
    elif len(concepts) == 1 and not result and len(unmatched) == 1 and not _REFUSAL.search(unmatched[0]):
        result = {concepts[0]: unmatched[0]}
    return result


def parse_fused(data_or_text: Any) -> tuple[bool | None, list[tuple[str, str]]]:
    """Read ``{matches, missing:[{concept, caption}]}``; ``(None, [])`` when unusable."""
    data = data_or_text
    if isinstance(data, str):
        data = parse_json_object(data)
    if not isinstance(data, dict):
        return None, []
    matches = data.get("matches")
    if isinstance(matches, str):
        matches = parse_yes_no(matches)
    if not isinstance(matches, bool):
        return None, []
    pairs: list[tuple[str, str]] = []
    missing = data.get("missing")
    if isinstance(missing, list):
        for el in missing:
            if isinstance(el, dict):
                concept, caption = el.get("concept"), el.get("caption")
                if isinstance(concept, str) and concept.strip():
                    cap = caption.strip() if isinstance(caption, str) and caption.strip() else ""
                    pairs.append((concept.strip(), cap))
            elif isinstance(el, str) and el.strip():
                pairs.append((el.strip(), ""))
    return matches, pairs
