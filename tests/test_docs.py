"""The docs against the code: hooks, the README's CLI table, generated option tables, the loop order.

Each check is a function returning what is wrong (empty: nothing), run on the real docs and, to
show it can fail, on a doc with a known mistake.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from imagerag_sdk import hookspecs, option_tables
from imagerag_sdk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HEAVY = ["torch", "diffusers", "transformers", "open_clip", "openai", "anthropic", "google.genai"]
CODE_SPAN = re.compile(r"`([^`]+)`")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


# -- 1. every hook spec is documented for plugin authors ----------------------------------------
def hook_specs() -> dict[str, list[str]]:
    """Each hook spec of ``hookspecs`` (functions carrying pluggy's spec mark) and its arguments."""
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return {name: list(inspect.signature(fn).parameters) for name, fn in vars(hookspecs).items()
            if inspect.isfunction(fn) and getattr(fn, marker, None) is not None}


def _chunks(markdown: str) -> list[tuple[str, set[str]]]:
    """(text, code in it) for each paragraph, heading and fenced block of ``markdown``."""
    chunks = []
    for block in FENCE.findall(markdown):
        chunks.append((block, {block}))
    for para in re.split(r"\n\s*\n", FENCE.sub("\n\n", markdown)):
        code = set(CODE_SPAN.findall(para))
        code |= {line for line in para.splitlines() if line.startswith("#")}  # headings count as code
        chunks.append((para, code))
    return chunks


def undocumented_hooks(markdown: str, specs: dict[str, list[str]]) -> list[str]:
    """Hooks no paragraph, heading or code block documents: the name written as code together with
    every argument (``register_commands(cli)``, or ``register_critics`` … "takes `register`")."""
    missing = []
    for name, args in specs.items():
        named = re.compile(rf"\b{name}\b")
        found = False
        for _, code in _chunks(markdown):
            if not any(named.search(c) for c in code):
                continue
            if all(any(re.search(rf"\b{arg}\b", c) for c in code) for arg in args):
                found = True
                break
        if not found:
            missing.append(f"{name}({', '.join(args)})")
    return missing


def test_every_hook_spec_is_in_the_plugin_authors_guide():
    specs = hook_specs()
    assert {"register_generators", "register_commands"} <= set(specs)  # the scan finds the specs
    missing = undocumented_hooks((DOCS / "plugin-authors.md").read_text(encoding="utf-8"), specs)
    assert not missing, f"hooks missing from docs/plugin-authors.md (name and arguments as code): {missing}"


def test_a_hook_without_its_argument_counts_as_undocumented():
    specs = {"register_widgets": ["register"], "register_commands": ["cli"]}
    doc = "Hooks: `register_widgets` does things.\n\n```python\ndef register_commands(cli): ...\n```\n"
    assert undocumented_hooks(doc, specs) == ["register_widgets(register)"]
    assert undocumented_hooks(doc + "\n`register_widgets` takes `register`.\n", specs) == []


# -- 2. the README's CLI table names real commands and options ------------------------------------
def full_cli() -> tuple[click.Group, set[str]]:
    """The ``imagerag`` command as ``main()`` builds it (corpus commands, plugin commands), without
    touching the module's group; and the paths of the core's own commands."""
    from imagerag_sdk import cli as cli_module
    from imagerag_sdk import cli_corpus, cli_eval

    root = click.Group("imagerag", commands=dict(cli_module.cli.commands))
    cli_corpus.add_commands(root)
    cli_eval.add_commands(root)
    core = set(_leaf_paths(root))
    cli_module._add_plugin_commands(root)
    return root, core


def _leaf_paths(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        out.extend(_leaf_paths(cmd, path + " ") if isinstance(cmd, click.Group) else [path])
    return out


def cli_table_usages(readme: str) -> list[str]:
    """The command lines of the table under the README's ``## CLI`` heading, one per alternative
    (``imagerag profiles list | show NAME`` gives ``imagerag profiles list``, ``imagerag profiles show NAME``)."""
    section = re.search(r"^## CLI\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, "README.md has no '## CLI' section"
    usages = []
    for line in section.group(1).splitlines():
        if not line.lstrip().startswith("|") or re.fullmatch(r"[\s|:-]+", line):
            continue
        first = re.split(r"(?<!\\)\|", line.strip().strip("|"))[0]
        for span in CODE_SPAN.findall(first):
            span = span.replace("\\|", "|")
            if not span.startswith("imagerag "):
                continue
            alternatives = [a.split() for a in span.split(" | ")]
            head = alternatives[0]
            usages.append(" ".join(head))
            for alt in alternatives[1:]:  # "show NAME" replaces the last word of the first
                usages.append(" ".join(head[:-1] + alt) if len(head) > 2 else " ".join(head + alt))
    return usages


def _resolve(usage: str, root: click.Group) -> tuple[click.Command, list[str], list[str], str | None]:
    """The command a documented line names, its path, the words after it, and what went wrong."""
    words = usage.split()
    if words[:1] != ["imagerag"]:
        return root, [], words, f"'{usage}': does not start with 'imagerag'"
    cmd: click.Command = root
    path, rest = ["imagerag"], words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith(("-", "[")):
        sub = cmd.commands.get(rest[0])
        if sub is None:
            return cmd, path, rest, (f"'{usage}': '{' '.join(path)}' has no command '{rest[0]}' "
                                     f"(it has: {', '.join(sorted(cmd.commands))})")
        cmd, path, rest = sub, path + [rest[0]], rest[1:]
    return cmd, path, rest, None


def command_path(usage: str, root: click.Group) -> str:
    """``generate`` for ``imagerag generate PROMPT --profile P``."""
    return " ".join(_resolve(usage, root)[1][1:])


def usage_problems(usage: str, root: click.Group) -> list[str]:
    """What in one documented command line does not match the click command it names."""
    cmd, path, rest, error = _resolve(usage, root)
    if error:
        return [error]
    if isinstance(cmd, click.Group):
        return [f"'{usage}': '{' '.join(path)}' is a group; name one of its commands"]
    name = " ".join(path)
    options = {opt: p for p in cmd.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    problems, shown, placeholders, depth, expect_value = [], set(), 0, 0, None
    for word in rest:
        optional = depth > 0 or word.startswith("[")
        depth += word.count("[") - word.count("]")
        token = word.strip("[]")
        if expect_value is not None:
            expect_value = None
            continue
        if token.startswith("-"):
            flag = token.split("=")[0]
            param = options.get(flag)
            if param is None:
                problems.append(f"'{usage}': '{name}' has no option {flag} (it has: {', '.join(sorted(options))})")
                continue
            if not optional:
                shown.add(param.name)
            if not param.is_flag and "=" not in token:
                expect_value = param
        elif token.isupper() or token == "…":
            placeholders += token != "…"
        else:
            problems.append(f"'{usage}': '{token}' is neither an option nor an argument placeholder of '{name}'")
    if expect_value is not None:
        problems.append(f"'{usage}': {expect_value.opts[0]} of '{name}' takes a value; show one")
    required_args = [a for a in arguments if a.required]
    if placeholders > len(arguments) and not any(a.nargs == -1 for a in arguments):
        problems.append(f"'{usage}': shows {placeholders} argument(s), '{name}' takes {len(arguments)}")
    if placeholders < len(required_args):
        problems.append(f"'{usage}': '{name}' requires the argument(s) "
                        f"{', '.join(a.human_readable_name for a in required_args)}")
    for p in cmd.params:
        if isinstance(p, click.Option) and p.required and p.name not in shown:
            problems.append(f"'{usage}': {p.opts[0]} is required by '{name}'; show it outside [ ]")
    return problems


def test_every_command_and_option_in_the_readme_cli_table_exists():
    root, core = full_cli()
    usages = cli_table_usages((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(u.startswith("imagerag generate") for u in usages), usages
    problems = [p for u in usages for p in usage_problems(u, root)]
    assert not problems, "README.md's CLI table is wrong:\n" + "\n".join(problems)
    documented = {command_path(u, root) for u in usages}
    missing = sorted(core - documented)
    assert not missing, f"commands missing from README.md's CLI table: {missing}"


def test_a_wrong_cli_table_row_is_reported():
    root, _ = full_cli()
    readme = textwrap.dedent("""\
        ## CLI

        | command | what it does |
        |---|---|
        | `imagerag search TEXT --corpus NAME --top 5` | searches |
        | `imagerag profiles list \\| remove NAME` | profiles |
        | `imagerag generate [--seed]` | runs |

        ## Next
        """)
    usages = cli_table_usages(readme)
    assert usages == ["imagerag search TEXT --corpus NAME --top 5", "imagerag profiles list",
                      "imagerag profiles remove NAME", "imagerag generate [--seed]"]
    problems = [p for u in usages for p in usage_problems(u, root)]
    assert any("has no option --top" in p for p in problems), problems
    assert any("has no command 'remove'" in p for p in problems), problems
    assert any("--seed of 'imagerag generate' takes a value" in p for p in problems), problems
    assert any("requires the argument(s) PROMPT" in p for p in problems), problems


# -- 3. option tables are generated from the models, and current ----------------------------------
def test_the_option_tables_in_the_docs_are_current():
    stale = option_tables.stale([DOCS])
    assert not stale, (f"option tables out of date in {[str(p.relative_to(ROOT)) for p in stale]}; "
                       f"regenerate with: {option_tables.FIX_COMMAND}")


def test_every_documented_component_has_a_generated_table():
    from imagerag_sdk.plugins import get_registry

    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    targets = [m.group("target").split() for m in option_tables.BLOCK.finditer(text)]
    documented = {(t[0], name) for t in targets for name in t[1:]}
    registry = get_registry()
    wanted = {(role, name) for role, regs in registry.components.items() for name, reg in regs.items()
              if not reg.cls.__module__.startswith("imagerag_sdk.testing")
              and not reg.distribution.startswith("imagerag-example")}
    assert ("critic", "openai") in wanted, "the first-party plugins are not installed (bash scripts/setup-env.sh)"
    missing = sorted(f"{role} {name}" for role, name in wanted - documented)
    assert not missing, (f"components with no '<!-- options: ROLE NAME -->' table in docs/: {missing}; add the "
                         f"markers to their page and run {option_tables.FIX_COMMAND}")
    assert ["loop"] in targets and ["loop.limits"] in targets


def test_check_reports_an_edited_block_and_the_generator_repairs_it(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n<!-- options: loop.limits -->\n<!-- /options -->\n\nAfter.\n", encoding="utf-8")
    assert option_tables.main([str(page)]) == 0
    generated = page.read_text(encoding="utf-8")
    assert "| `caption` | int (≥ 20) | `1000` | Characters kept of each retrieval caption |" in generated
    assert generated.endswith("<!-- /options -->\n\nAfter.\n")
    page.write_text(generated.replace("`1000`", "`2000`"), encoding="utf-8")
    assert option_tables.stale([tmp_path]) == [page]
    assert option_tables.main(["--check", str(tmp_path)]) == 1
    assert option_tables.FIX_COMMAND in capsys.readouterr().err
    assert option_tables.main([str(tmp_path)]) == 0
    assert page.read_text(encoding="utf-8") == generated


def test_a_table_shows_aliases_bounds_choices_and_one_default_column_per_component():
    table = option_tables.table(option_tables.models_for("embedder clip siglip"))
    header, _, *rows = table.splitlines()
    assert header == "| option | type | `clip` default | `siglip` default | description |"
    row = {r.split(" | ")[0].lstrip("| "): r for r in rows}
    assert row["`model_config`"].split(" | ")[1] == "str \\| null"  # the key profiles write (an alias)
    assert " | `ViT-B-32` | `ViT-B-16-SigLIP` | " in row["`model`"]
    assert row["`dtype`"].split(" | ")[1] == "`auto` \\| `fp32` \\| `bf16` \\| `fp16`"
    assert "int (1 to 4096)" in row["`batch_size`"]
    omnigen = option_tables.table(option_tables.models_for("generator omnigen"))
    assert "| `steps` (also `num_inference_steps`) | int (1 to 1000) | `50` |" in omnigen
    vlm = option_tables.table(option_tables.models_for("reranker vlm"))
    assert "| `critic` | critic spec | required |" in vlm


def test_an_unknown_table_target_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown option table 'loop.limit'") as err:
        option_tables.render("<!-- options: loop.limit -->\n<!-- /options -->\n")
    assert "ROLE NAME" in str(err.value)


def test_the_generator_imports_no_model_library():
    code = textwrap.dedent(f"""
        import json, sys
        from imagerag_sdk import option_tables
        assert not option_tables.stale([{str(DOCS)!r}])
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# -- 4. architecture.md tells the loop in the code's order ----------------------------------------
def test_architecture_applies_min_similarity_before_the_reranker():
    """The pipeline thresholds the retriever's similarities, then reranks (see
    tests/test_pipeline.py::test_threshold_applies_to_similarity_before_reranking)."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    loop = next(b for b in FENCE.findall(text) if "for round in" in b).splitlines()
    threshold = next(i for i, line in enumerate(loop) if "min_similarity" in line)
    rerank = next(i for i, line in enumerate(loop) if "rerank(" in line)
    assert threshold < rerank, "docs/architecture.md puts the reranker before min_similarity"
