#!/usr/bin/env bash
# Build the sdist and wheel of the core and of every plugin under plugins/ into one folder, then
# check them: `twine check --strict`, each sdist holds its project's sources, each wheel its
# package's files (the core's profiles/*.yaml included) and the entry points pyproject.toml declares.
#
#   bash scripts/build-dist.sh [OUT_DIR] [PROJECT_DIR ...]     # default: dist/, the core + plugins/*/
#   pip install --find-links dist "imagerag-sdk[flux,qwen]"
#
# Earlier imagerag_* sdists and wheels in OUT_DIR are removed first. The build tools
# (requirements/dist-tools.txt) live in their own venv, $IMAGERAG_DIST_TOOLS (default
# .cache/dist-tools), created on first use; nothing is installed into .venv.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
projects=()
if [ $# -gt 1 ]; then
  for dir in "${@:2}"; do projects+=("$(cd "$dir" && pwd)"); done
else
  projects=("$here")
  for dir in "$here"/plugins/*/; do [ -f "$dir/pyproject.toml" ] && projects+=("${dir%/}"); done
fi
cd "$here"

tools=${IMAGERAG_DIST_TOOLS:-$here/.cache/dist-tools}
if [ ! -x "$tools/bin/python" ] || ! cmp -s requirements/dist-tools.txt "$tools/dist-tools.txt"; then
  "${PYTHON:-python3}" -m venv --clear "$tools"
  if ! "$tools/bin/python" -m pip install --disable-pip-version-check -r requirements/dist-tools.txt \
      >"$tools/install.log" 2>&1; then
    cat "$tools/install.log" >&2
    echo "build-dist: installing the build tools into $tools failed (log above)" >&2
    exit 1
  fi
  cp requirements/dist-tools.txt "$tools/dist-tools.txt"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
rm -f "$out"/imagerag_*.tar.gz "$out"/imagerag_*.whl
built=()
for dir in "${projects[@]}"; do
  s="$stage/$(basename "$dir")"
  mkdir -p "$s"
  # No flag: build makes the sdist, then the wheel from that sdist, so a file the sdist lacks fails here.
  if ! "$tools/bin/python" -m build --no-isolation --outdir "$s" "$dir" >"$s.log" 2>&1; then
    cat "$s.log" >&2
    echo "build-dist: building $dir failed (log above); fix its pyproject.toml and run again" >&2
    exit 1
  fi
  "$tools/bin/python" - "$dir" "$s" <<'PY'
"""Check one project's sdist and wheel against its source tree; print one line or exit 1."""
import configparser
import sys
import tarfile
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

project, stage = Path(sys.argv[1]), Path(sys.argv[2])
meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
sdists, wheels = sorted(stage.glob("*.tar.gz")), sorted(stage.glob("*.whl"))
if len(sdists) != 1 or len(wheels) != 1:
    sys.exit(f"build-dist: {meta['name']}: expected one sdist and one wheel, got {[p.name for p in stage.iterdir()]}")
packages = sorted(p.parent for p in (project / "src").glob("*/__init__.py"))
if not packages:
    sys.exit(f"build-dist: {meta['name']}: no package with an __init__.py under {project / 'src'}")
sources = sorted(f.relative_to(project / "src").as_posix() for pkg in packages for f in pkg.rglob("*")
                 if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc")

with tarfile.open(sdists[0]) as tar:
    in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name}
with zipfile.ZipFile(wheels[0]) as zf:
    in_wheel = set(zf.namelist())
    ep_file = [n for n in in_wheel if n.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str
    if ep_file:
        entry_points.read_string(zf.read(ep_file[0]).decode())

problems = []
need = {"PKG-INFO", "pyproject.toml", "LICENSE", meta.get("readme", "README.md")} | {"src/" + s for s in sources}
problems += [f"sdist lacks {f}" for f in sorted(need - in_sdist)]
problems += [f"sdist holds another project's {f}" for f in sorted(in_sdist) if f.endswith("/pyproject.toml")]
problems += [f"wheel lacks {f}" for f in sources if f not in in_wheel]
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in in_wheel):
    problems.append("wheel lacks the license text (a LICENSE file in the project folder)")
problems += [f"{kind} holds bytecode {f}" for kind, files in (("sdist", in_sdist), ("wheel", in_wheel))
             for f in sorted(files) if "__pycache__/" in f or f.endswith(".pyc")]
declared = dict(meta.get("entry-points", {}))
if meta.get("scripts"):
    declared["console_scripts"] = meta["scripts"]
for group, eps in declared.items():
    for name, target in eps.items():
        got = entry_points.get(group, name, fallback=None)
        if got is None or got.strip() != target:
            problems.append(f"wheel lacks entry point [{group}] {name} = {target}")
if problems:
    sys.exit(f"build-dist: {meta['name']}: " + "; ".join(problems))
print(f"ok  {sdists[0].name} ({len(in_sdist)} files), {wheels[0].name} ({len(in_wheel)} files)")
PY
  for f in "$s"/*; do built+=("$out/$(basename "$f")"); done
  mv "$s"/* "$out"/
done
"$tools/bin/python" -m twine check --strict "${built[@]}"
echo "build-dist: ${#built[@]} files in $out"
