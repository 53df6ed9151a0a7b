"""``imagerag`` command line: parses, calls the library, prints. Logic lives in the library."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import click

from . import __version__
from .errors import ImageRAGError


def _console(stderr: bool = True):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped into a file, grep or less: tables as wide as they need (rich would assume 80 columns)
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, width=width)


class _Root(click.Group):
    """The ``imagerag`` group. Adding the plugins' commands imports every plugin, so it is done only
    when needed: for a command name the core does not have (``imagerag serve``), for shell
    completion, and by ``imagerag plugins``, which lists them. ``--help`` and ``--version`` list the
    core's commands and import no plugin. A core command added with :meth:`add_lazy` (``eval``) is
    imported only when it runs or the commands are listed: ``imagerag search`` does not import it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_commands: dict[str, str] | None = None  # command -> plugin, once added
        self._registry: object = None  # the registry they were added from
        self.lazy: dict[str, str] = {}
        """Core commands not imported yet: name -> the module whose ``add_commands`` adds it."""

    def add_lazy(self, name: str, module: str) -> None:
        """Add core command ``name`` from ``module`` only when it is asked for or listed."""
        if name not in self.commands:
            self.lazy[name] = module

    def load_lazy(self, *names: str) -> None:
        import importlib

        for name in names or list(self.lazy):
            module = self.lazy.pop(name, None)
            if module is not None:
                importlib.import_module(module).add_commands(self)

    def load_plugin_commands(self) -> dict[str, str]:
        """Add the working plugins' commands (again, if the process registry was replaced)."""
        from .plugins import get_registry

        self.load_lazy()  # the core's names first: a plugin's command never replaces one
        registry = get_registry()
        if self.plugin_commands is None or self._registry is not registry:
            for name in self.plugin_commands or ():
                self.commands.pop(name, None)
            self.plugin_commands = _add_plugin_commands(self)
            self._registry = registry
        return self.plugin_commands

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load_lazy(cmd_name)
        if cmd_name not in self.commands or cmd_name in (self.plugin_commands or {}):
            self.load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The core's commands; in shell completion the plugins' too."""
        if ctx.resilient_parsing:
            self.load_plugin_commands()
            return sorted(self.commands)
        return sorted((set(self.commands) | set(self.lazy)) - set(self.plugin_commands or ()))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        with formatter.section("Plugin commands"):
            if self.plugin_commands:  # already added in this process
                formatter.write_dl([(name, f"{self.commands[name].get_short_help_str()} (plugin '{plugin}')")
                                    for name, plugin in sorted(self.plugin_commands.items())])
            else:
                formatter.write_text("Plugins can add commands (imagerag NAME); 'imagerag plugins' lists "
                                     "them. They are not listed here: that would import every plugin.")


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, package_name="imagerag-sdk")  # no metadata read: ~30 ms
def cli() -> None:
    """Retrieval-augmented image generation: generate, critique, retrieve references, regenerate.

    Set IMAGERAG_RAISE_ERRORS=1 to see tracebacks instead of one-line errors.
    """


# -- plugins -------------------------------------------------------------------------------------
@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(as_json: bool) -> None:
    """Installed plugins, broken ones with their error, name clashes, each component's options, and
    the commands plugins add.

    With IMAGERAG_RAISE_ERRORS=1 the traceback of each broken plugin is printed too.
    """
    from .describe import capabilities_of, component_table, options_of
    from .plugins import get_registry

    registry = get_registry()
    root = click.get_current_context().find_root().command
    commands: dict[str, str] = {}  # the plugins' commands and who adds each
    helps: dict[str, str] = {}
    if isinstance(root, _Root):  # adding them runs register_commands, which can break a plugin
        commands = root.load_plugin_commands()
        helps = {name: root.commands[name].get_short_help_str(200) for name in commands}
    if as_json:
        data = {"plugins": [{"name": p.name, "distribution": p.distribution, "version": p.version,
                             "error": p.error, "traceback": p.traceback, "clashes": p.clashes,
                             "components": [list(c) for c in p.components]}
                            for p in registry.plugins],
                "components": {role: {name: {"plugin": reg.plugin, "distribution": reg.distribution,
                                             "description": reg.cls.description,
                                             "options": options_of(reg.cls),
                                             "capabilities": capabilities_of(reg.cls)}
                                      for name, reg in regs.items()}
                               for role, regs in registry.components.items()},
                "ambiguous": {role: {name: [{"plugin": r.plugin, "distribution": r.distribution} for r in regs]
                                     for name, regs in names.items()}
                              for role, names in registry.ambiguous.items() if names},
                "commands": commands}
        click.echo(json.dumps(data, indent=2))
        return
    console = _console(stderr=False)
    for table in component_table(registry):
        console.print(table)
    if commands:
        from rich.table import Table

        table = Table("command", "plugin", "description", title="Commands from plugins")
        for name, plugin in sorted(commands.items()):
            table.add_row(name, plugin, helps[name])
        console.print(table)
    if _raise_errors():
        for p in registry.broken:
            console.print(f"\nplugin '{p.name}' ({p.distribution}): {p.error}")
            console.print(p.traceback or "(no traceback: the error was found, not raised)")


# -- profiles ------------------------------------------------------------------------------------
@cli.group("profiles")
def profiles_cmd() -> None:
    """List, show and validate pipeline profiles."""


@profiles_cmd.command("list")
def profiles_list() -> None:
    """User profiles and those the installed plugins ship, with who ships each."""
    from rich.table import Table

    from .profiles import check, list_profiles, load_profile

    table = Table("name", "from", "runs here", "description")
    for entry in list_profiles():
        if entry.origin == "ambiguous":
            table.add_row(entry.name, entry.where, "no: ambiguous", "")
            continue
        try:
            profile = load_profile(entry.path or entry.name)
            problems = check(profile)
            table.add_row(entry.name, entry.where, "yes" if not problems else "no: " + problems[0].split(": ", 1)[-1],
                          profile.description)
        except ImageRAGError as exc:
            table.add_row(entry.name, entry.where, "invalid", str(exc))
    _console(stderr=False).print(table)


@profiles_cmd.command("show")
@click.argument("name")
def profiles_show(name: str) -> None:
    """Print a profile (name or path) as YAML."""
    from .profiles import dump, load_profile

    profile = load_profile(name)
    click.echo(f"# {profile.source}")
    click.echo(dump(profile), nl=False)


@profiles_cmd.command("validate")
@click.argument("files", nargs=-1, required=True)
def profiles_validate(files: tuple[str, ...]) -> None:
    """Validate profiles (names or paths). Exit 1 if any is invalid.

    'note:' lines say what stops a valid profile from running on this machine now (an unset
    environment variable, a missing API key); 'imagerag generate' refuses those too."""
    from .profiles import inspect_profile, load_profile

    bad = 0
    for item in files:
        try:
            profile = load_profile(item)
        except ImageRAGError as exc:
            bad += 1
            for problem in getattr(exc, "problems", [str(exc)]):
                click.echo(f"invalid: {problem}")
            continue
        findings = inspect_profile(profile)
        missing = [p for p in findings.invalid if "requires" in p and "not installed" in p]
        other = [p for p in findings.invalid if p not in missing]
        for p in other:
            click.echo(f"invalid: {p}")
        bad += bool(other)
        if not other:
            note = "; to run it here: " + "; ".join(p.split(" — ", 1)[-1] for p in missing) if missing else ""
            click.echo(f"ok: {profile.source}{note}")
        for p in findings.here:
            click.echo(f"note: {p}")
    if bad:
        raise SystemExit(1)


# -- generate ------------------------------------------------------------------------------------
class _ProfileOption(click.Option):
    """``--profile``, required; when it is missing the error lists the profiles there are."""

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        if self.value_is_missing(value):
            from .profiles import available

            raise click.MissingParameter(ctx=ctx, param=self, message=(
                f"Choose one of: {available()} (imagerag profiles list), or pass a YAML file."))
        return super().process_value(ctx, value)


@cli.command("generate")
@click.argument("prompt")
@click.option("--profile", "-p", cls=_ProfileOption, required=True,
              help="Profile name or YAML path ('imagerag profiles list' shows them).")
@click.option("--out", "-o", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder the run folder is created in.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--image", "images", multiple=True, metavar="PATH",
              help="A user (personalization) image; counts against the reference budget. Repeatable.")
@click.option("--mode", type=click.Choice(["captions", "concepts", "prompt", "rephrase"]),
              help="Override the profile's loop mode (the paper's ablations).")
@click.option("--max-rounds", type=int, help="Override loop.max_rounds.")
@click.option("--min-similarity", type=float, help="Override loop.min_similarity.")
def generate_cmd(prompt: str, profile: str, out: str, seed: int, images: tuple[str, ...],
                 mode: str | None, max_rounds: int | None, min_similarity: float | None) -> None:
    """Run the ImageRAG loop for PROMPT; prints the run folder.

    The profile (as 'profiles validate' checks it, plus missing keys) and every --image are
    checked before any model loads; each problem is printed on its own line. SIGTERM stops a
    run like Ctrl-C (trace 'interrupted', report written), with exit code 143."""
    from .images import bad_images_error, check_images
    from .interrupts import Terminated, sigterm_as_interrupt
    from .pipeline import ImageRAG

    overrides: dict[str, Any] = {k: v for k, v in (("mode", mode), ("max_rounds", max_rounds),
                                                   ("min_similarity", min_similarity)) if v is not None}
    console = _console()
    bad_images = check_images([os.path.expanduser(i) for i in images], what="--image")
    try:
        pipeline = ImageRAG.from_profile(profile, **overrides)
    except ImageRAGError as exc:
        if bad_images:
            exc.problems = list(getattr(exc, "problems", [str(exc)])) + bad_images  # type: ignore[attr-defined]
        _refuse(exc)
    if bad_images:
        _refuse(bad_images_error(bad_images))
    try:
        with sigterm_as_interrupt():
            progress = _progress_printer(console)
            pipeline.load(progress)
            result = pipeline.run(prompt, seed=seed, user_images=list(images), out=out, progress=progress)
    except Terminated as exc:
        click.echo("terminated (SIGTERM): the run folder keeps what was done, with status 'interrupted'",
                   err=True)
        raise SystemExit(exc.exit_code) from None
    run_dir = result.run_dir
    assert run_dir is not None  # run(out=...) always writes a run folder
    console.print(f"done · {summary(result)} · report: {run_dir / 'report.html'}")
    click.echo(str(run_dir))


def _refuse(error: ImageRAGError) -> NoReturn:
    """Print each of ``error.problems`` as its own ``error:`` line and exit 1; an error without
    ``.problems`` (or IMAGERAG_RAISE_ERRORS=1) goes on to :func:`main`."""
    problems = getattr(error, "problems", None)
    if not problems or _raise_errors():
        raise error
    for line in problems:
        click.echo(f"error: {line}", err=True)
    raise SystemExit(1)


def summary(result) -> str:
    """One line on what the run did."""
    n = len(result.critiques)
    if result.critic_error:
        return "the critic failed; kept the image made so far (on_critic_error: keep_initial; see report)"
    if n == 0:
        return "no critique"
    if result.critiques[-1].matches:
        return "the initial image matched" if n == 1 else f"matched after {n - 1} regeneration(s)"
    regenerated = len([g for g in result.trace.generations if g.round > 0])
    if not regenerated:
        return "did not match; nothing to regenerate with (see report)"
    return f"did not match; regenerated {regenerated}x with {len(result.references)} reference(s)"


def _progress_printer(console):
    import time

    start = time.perf_counter()

    def show(stage: str, message: str) -> None:
        console.print(f"[{time.perf_counter() - start:7.2f}s] {stage:<9} {message}")

    return show


# -- entry point -----------------------------------------------------------------------------------
def _raise_errors() -> bool:
    return os.environ.get("IMAGERAG_RAISE_ERRORS", "") not in ("", "0")


def _add_plugin_commands(group: click.Group) -> dict[str, str]:
    """Run each working plugin's ``register_commands`` on ``group``; return the commands added and
    the plugin of each. A broken plugin's is never run; one that raises breaks its plugin and adds
    nothing; a name ``group`` already has (a core command, another plugin's) is kept and the
    newcomer recorded as a clash on its plugin."""
    from .plugins import get_registry

    registry = get_registry()
    infos = {p.name: p for p in registry.plugins}
    added: dict[str, str] = {}
    for impl in registry.pm.hook.register_commands.get_hookimpls():
        info = infos.get(impl.plugin_name)
        if info is not None and not info.ok:
            continue
        before = dict(group.commands)
        try:
            impl.function(cli=group)
        except Exception as exc:  # a plugin's broken command must not take the CLI down
            group.commands.clear()
            group.commands.update(before)
            if info is not None:
                info.fail(f"register_commands failed: {type(exc).__name__}: {exc}", exc)
            continue
        for name, command in list(group.commands.items()):
            if name not in before:
                added[name] = impl.plugin_name
            elif command is not before[name]:
                group.commands[name] = before[name]
                owner = f"added by plugin '{added[name]}'" if name in added else "a core command"
                if info is not None:
                    info.clashes.append(f"command '{name}' is {owner}; not replaced")
    return added


def main(argv: list[str] | None = None) -> None:
    from . import cli_corpus

    cli_corpus.add_commands(cli)
    cli.add_lazy("eval", "imagerag_sdk.cli_eval")  # imported for `imagerag eval` and the command list
    raise_errors = _raise_errors()
    args = sys.argv[1:] if argv is None else list(argv)
    try:  # plugin commands are added only when a name the core lacks is asked for (_Root)
        cli.main(args=args, prog_name="imagerag", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        if raise_errors:
            raise
        click.echo("interrupted (the run folder keeps what was done, with status 'interrupted')", err=True)
        raise SystemExit(130) from None
    except ImageRAGError as exc:
        if raise_errors:
            raise
        from .redact import scrub

        click.echo(scrub(f"error: {exc}"), err=True)
        raise SystemExit(1) from None
    except Exception as exc:
        if raise_errors:
            raise
        from .redact import scrub

        click.echo(scrub(f"error: unexpected {type(exc).__name__}: {exc} "
                         "(set IMAGERAG_RAISE_ERRORS=1 for the traceback; please report it)"), err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main(sys.argv[1:])
