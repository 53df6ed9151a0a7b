"""``report.html``: one self-contained page showing a run at a glance (images inlined).

Texts come from the written trace, where long ones are already previews naming their side file
(``texts/….txt``); the page links those files instead of repeating the texts."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0;max-width:260px}figure img{max-width:256px;max-height:256px;border:1px solid #ccc}
figcaption{font-size:12px;color:#555;word-break:break-all}
.used{outline:3px solid #2a8}.dropped{opacity:.55}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-size:11px;background:#eee}
.ok{background:#cfc}.bad{background:#fcc}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;background:#f7f7f7;padding:6px;font-size:12px}
"""


_SIDE_FILE = re.compile(r"texts/[0-9a-f]{16}\.txt")


def _text(value: Any) -> str:
    """Escaped text with side-file names (``texts/….txt``) as links."""
    return _SIDE_FILE.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', html.escape(str(value)))


def _img_tag(path: Path, alt: str, cls: str = "", max_side: int = 512) -> str:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85)
    except Exception as exc:  # a missing/corrupt image must not stop the report
        return f'<span class="badge bad">image unavailable: {html.escape(str(exc))}</span>'
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/jpeg;base64,{data}">'


def _figure(run_dir: Path, rel_or_abs: str | None, caption: str, cls: str = "") -> str:
    if not rel_or_abs:
        return ""
    p = Path(rel_or_abs)
    p = p if p.is_absolute() else run_dir / p
    return (f'<figure>{_img_tag(p, caption, cls)}<figcaption>{html.escape(caption)}</figcaption></figure>')


def render_report(trace: dict[str, Any], run_dir: Path) -> str:
    e = html.escape
    out = [f"<!doctype html><meta charset=utf-8><title>imagerag run: {e(trace.get('prompt', ''))}</title>",
           f"<style>{_CSS}</style>", f"<h1>{e(trace.get('prompt', ''))}</h1>"]
    status = trace.get("status", "?")
    matched = trace.get("matched")
    out.append(f"<p>status <span class='badge {'ok' if status == 'done' else 'bad'}'>{e(status)}</span> "
               f"· mode {e(str(trace.get('mode')))} · seed {e(str(trace.get('seed')))} "
               f"· profile {e(str(trace.get('profile')))} · {e(str(trace.get('seconds', '')))} s"
               + (f" · critic verdict on last critiqued image: {'match' if matched else 'no match'}"
                  if matched is not None else "") + "</p>")
    if trace.get("error"):
        out.append(f"<pre>{e(trace['error'])}</pre>")
    gens = trace.get("generations", [])
    out.append("<h2>Images</h2><div class='row'>")
    for g in gens:
        label = "initial" if g.get("round") == 0 else f"round {g.get('round')}"
        out.append(_figure(run_dir, g.get("image"), f"{label}: {g.get('prompt', '')}"))
    out.append("</div>")
    for rnd in trace.get("rounds", []):
        out.append(f"<h2>Round {rnd.get('round')}</h2>")
        crit = rnd.get("critique") or {}
        if crit:
            verdict = "matches" if crit.get("matches") else "does not match"
            out.append(f"<p>critic: <b>{verdict}</b> (attempts {crit.get('attempts')})"
                       + (" — named no concept; fell back to the prompt" if rnd.get("fallback") else "")
                       + "</p>")
        if rnd.get("truncated"):
            out.append("<p>cut to the loop's limits (<code>loop.limits</code>):</p><ul>" + "".join(
                f"<li>{e(t.get('what', ''))} of {e(str(t.get('where', '')))}: {t.get('original_chars')} → "
                f"{t.get('kept_chars')} characters" + (f" (full text: {_text(t['full_text'])})"
                                                       if t.get("full_text") else "") + "</li>"
                for t in rnd["truncated"]) + "</ul>")
        if rnd.get("queries"):
            out.append("<table><tr><th>concept</th><th>retrieval caption</th></tr>")
            for q in rnd["queries"]:
                out.append(f"<tr><td>{_text(q.get('concept', ''))}</td><td>{_text(q.get('query', ''))}</td></tr>")
            out.append("</table>")
        used = {(u.get("query"), u.get("path")) for u in rnd.get("used", [])}
        for query, hits in (rnd.get("hits") or {}).items():
            out.append(f"<p>hits for <i>{e(query)}</i> (outlined: used)</p><div class='row'>")
            for h in hits:
                cls = "used" if (query, h.get("path")) in used else "dropped"
                out.append(_figure(run_dir, h.get("path"),
                                   f"{h.get('score', 0):.3f} {Path(h.get('path', '')).name}", cls))
            out.append("</div>")
        if rnd.get("dropped"):
            out.append("<p>dropped:</p><ul>" + "".join(
                f"<li>{e(Path(d.get('path', '')).name)}: {e(d.get('reason', ''))}</li>" for d in rnd["dropped"])
                + "</ul>")
        if rnd.get("notes"):
            out.append("<ul>" + "".join(f"<li>{_text(n)}</li>" for n in rnd["notes"]) + "</ul>")
        if crit.get("exchanges"):
            out.append("<details><summary>critic exchanges</summary>")
            for x in crit["exchanges"]:
                out.append(f"<p>{e(x.get('stage', ''))} #{x.get('attempt')} · temperature "
                           f"{e(str(x.get('temperature')))}{' · ' + e(x['alternative']) if x.get('alternative') else ''}"
                           f"</p><pre>{_text(x.get('prompt', ''))}</pre><pre>{_text(x.get('answer', ''))}</pre>")
            out.append("</details>")
    if trace.get("final_image"):
        out.append("<h2>Final image</h2>" + _figure(run_dir, trace["final_image"], trace.get("prompt", "")))
    out.append("<h2>Components</h2><pre>" + e(json.dumps(trace.get("components", {}), indent=1)) + "</pre>")
    return "\n".join(out)
