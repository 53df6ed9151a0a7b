"""Benchmark sets: the set file (YAML or CSV) and builders for folder-per-class datasets.

A set is a list of items, each an ``id``, a ``prompt``, a ``concept`` and optionally real images
of the concept (a folder, or in YAML a list of files) that scorers such as ``dino`` compare
against. Relative paths resolve against the set file's folder. YAML::

    items:
      - {id: cub-0000, prompt: A photo of a Black footed Albatross, concept: Black footed Albatross,
         real_images: CUB_200_2011/images/001.Black_footed_Albatross}

CSV: a header row naming the columns ``id,prompt,concept,real_images`` (only ``prompt`` is
required; ``id`` defaults to ``item-NNNN`` by position).

:func:`build_items` reads a dataset the user has locally (nothing is downloaded), laid out like
ImageNet, CUB-200, iNaturalist 2021, FGVC-Aircraft or any folder-per-class tree; see
docs/evaluation.md.
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FIELDS = ("id", "prompt", "concept", "real_images")
LAYOUTS = ("auto", "folders", "imagenet", "cub", "inat", "aircraft")
DEFAULT_TEMPLATE = "A photo of a {concept}"


@dataclass(frozen=True)
class Item:
    """One benchmark item."""

    id: str
    prompt: str
    concept: str = ""
    real_images: tuple[str, ...] = ()
    """Absolute paths of real images of the concept (a folder in the set file is listed)."""
    real_images_source: str | None = None
    """What the set file said (folder or files), as an absolute path; None when it said nothing."""


@dataclass(frozen=True)
class BenchmarkSet:
    path: Path
    items: list[Item] = field(default_factory=list)

    def without_real_images(self) -> list[str]:
        """Ids of the items that have no real image."""
        return [item.id for item in self.items if not item.real_images]


def _image_files(folder: Path) -> list[str]:
    from ..index.scan import IMAGE_EXTENSIONS

    return sorted(str(p.resolve()) for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _real_images(value: Any, base: Path, where: str) -> tuple[tuple[str, ...], str | None]:
    if value is None or value == "":
        return (), None
    if isinstance(value, str):
        folder = (base / os.path.expanduser(value)).resolve()
        if folder.is_file():
            return (str(folder),), str(folder)
        if not folder.is_dir():
            raise ConfigError(f"{where}: real_images folder {folder} does not exist",
                              hint="give a folder of images of the concept (relative to the set file) or leave it out")
        files = _image_files(folder)
        if not files:
            raise ConfigError(f"{where}: real_images folder {folder} holds no image",
                              hint="put images of the concept there (PNG, JPEG, WebP …) or leave it out")
        return tuple(files), str(folder)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        paths = [(base / os.path.expanduser(v)).resolve() for v in value]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ConfigError(f"{where}: real image {missing[0]} does not exist"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                              hint="fix the paths (relative to the set file)")
        return tuple(str(p) for p in paths), str(paths[0].parent) if paths else None
    raise ConfigError(f"{where}: real_images is a folder or a list of image files (got {type(value).__name__})",
                      hint="e.g. real_images: images/001.Black_footed_Albatross")


def _item(data: Any, n: int, base: Path, where: str) -> Item:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: an item is a mapping with keys {', '.join(FIELDS)} (got {type(data).__name__})",
                          hint="e.g. - {id: a, prompt: A photo of a cat, concept: cat}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'", hint=f"an item has the keys {', '.join(FIELDS)}")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where}: the item has no prompt", hint="give each item a non-empty 'prompt'")
    item_id = data.get("id")
    item_id = f"item-{n:04d}" if item_id in (None, "") else str(item_id)
    if not ID_PATTERN.match(item_id):
        raise ConfigError(f"{where}: id '{item_id}' is not a plain name",
                          hint="use letters, digits, '.', '_' and '-' (it names cache files)")
    concept = data.get("concept")
    concept = "" if concept is None else str(concept)
    files, source = _real_images(data.get("real_images"), base, where)
    return Item(item_id, prompt.strip(), concept.strip(), files, source)


class _LineLoader:
    """A YAML loader that records each mapping's line under ``__line__``."""

    @staticmethod
    def load(text: str) -> Any:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
            value = loader.construct_mapping(node, deep=True)
            value["__line__"] = node.start_mark.line + 1
            return value

        Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass: no arbitrary objects


def load_set(path: str | Path) -> BenchmarkSet:
    """Read a set file (``.yaml``/``.yml`` or ``.csv``); :class:`ConfigError` naming the line or row."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"benchmark set {path} does not exist",
                          hint="pass a .yaml or .csv set file ('imagerag eval build-set' writes one)")
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a CSV saved by a spreadsheet starts with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the benchmark set {path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        items = _csv_items(text, path, base)
    elif path.suffix.lower() in (".yaml", ".yml"):
        items = _yaml_items(text, path, base)
    else:
        raise ConfigError(f"benchmark set {path}: unknown format '{path.suffix}'", hint="use a .yaml or .csv file")
    if not items:
        raise ConfigError(f"benchmark set {path} has no items", hint="add at least one item with a prompt")
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            raise ConfigError(f"benchmark set {path}: id '{item.id}' is used twice (items {seen[item.id] + 1} "
                              f"and {i + 1})", hint="give each item its own id")
        seen[item.id] = i
    return BenchmarkSet(path, items)


def _yaml_items(text: str, path: Path, base: Path) -> list[Item]:
    import yaml

    try:
        data = _LineLoader.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}",
                          hint="fix the YAML syntax") from None
    if isinstance(data, dict):
        line = data.pop("__line__", 1)
        extra = sorted(set(data) - {"items", "name", "description"})
        if extra:
            raise ConfigError(f"{path}: line {line}: unknown key '{extra[0]}'",
                              hint="a set file has 'items' (and optionally 'name', 'description')")
        data = data.get("items")
    if not isinstance(data, list):
        raise ConfigError(f"{path}: a set file holds a list of items (or a mapping with 'items')",
                          hint="see docs/evaluation.md for the format")
    items = []
    for n, entry in enumerate(data):
        line = entry.pop("__line__", "?") if isinstance(entry, dict) else "?"
        items.append(_item(entry, n, base, f"{path}: line {line}"))
    return items


def _csv_items(text: str, path: Path, base: Path) -> list[Item]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    if "prompt" not in header:
        raise ConfigError(f"{path}: row 1: the header has no 'prompt' column (got: {', '.join(header) or 'nothing'})",
                          hint=f"the first row names the columns: {','.join(FIELDS)}")
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise ConfigError(f"{path}: row 1: unknown column '{unknown[0]}'", hint=f"the columns are {','.join(FIELDS)}")
    items = []
    for n, row in enumerate(reader):
        where = f"{path}: row {reader.line_num}"
        if None in row:
            raise ConfigError(f"{where}: more fields than the header has columns",
                              hint="quote values that hold commas")
        items.append(_item({k: v for k, v in row.items() if v is not None}, n, base, where))
    return items


def write_set(path: str | Path, items: Sequence[Item]) -> Path:
    """Write ``items`` as a YAML set file; real-image folders relative to it where possible."""
    import yaml

    from ..atomic import write_text

    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for item in items:
        entry: dict[str, Any] = {"id": item.id, "prompt": item.prompt, "concept": item.concept}
        if item.real_images_source is not None and Path(item.real_images_source).is_dir():
            entry["real_images"] = _relative(item.real_images_source, path.parent)
        elif item.real_images:
            entry["real_images"] = [_relative(p, path.parent) for p in item.real_images]
        out.append(entry)
    write_text(path, yaml.safe_dump({"items": out}, sort_keys=False, allow_unicode=True, width=200))
    return path


def _relative(target: str, base: Path) -> str:
    try:
        return os.path.relpath(target, base)
    except ValueError:  # another drive (Windows)
        return target


# -- builders ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Class:
    key: str
    """The folder (or label) name."""
    concept: str
    folder: Path | None = None
    files: tuple[str, ...] = ()


def build_items(root: str | Path, *, layout: str = "auto", names_file: str | Path | None = None,
                template: str = DEFAULT_TEMPLATE, limit: int | None = None, seed: int = 0,
                prefix: str | None = None, split: str = "train", first: bool = False) -> list[Item]:
    """One item per class of the dataset at ``root``: the prompt is ``template`` with ``{concept}``,
    the real images are the class's images. ``limit`` classes are sampled with ``seed`` (the same
    classes every time), or with ``first`` the first ``limit`` in order; ids are
    ``<prefix>-<class index>``, stable whatever the limit."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"dataset folder {root} does not exist", hint="pass the folder the dataset was unpacked into")
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout '{layout}'", hint=f"choose one of {', '.join(LAYOUTS)}")
    if "{concept}" not in template:
        raise ConfigError(f"the prompt template '{template}' has no {{concept}}", hint="e.g. 'A photo of a {concept}'")
    if layout == "auto":
        layout = detect_layout(root)
    names = Path(names_file).expanduser().resolve() if names_file else None
    classes = {"folders": _folder_classes, "imagenet": _imagenet_classes, "cub": _cub_classes,
               "inat": _inat_classes, "aircraft": _aircraft_classes}[layout](root, names, split)
    if not classes:
        raise ConfigError(f"no class with images found under {root} (layout '{layout}')",
                          hint="check the folder, or pass --layout (see docs/evaluation.md for each layout)")
    indexed = list(enumerate(classes))
    if limit is not None and limit < len(indexed):
        if limit < 1:
            raise ConfigError(f"--limit {limit}: give at least 1")
        indexed = indexed[:limit] if first else sorted(random.Random(seed).sample(indexed, limit), key=lambda t: t[0])
    prefix = prefix or (layout if layout != "folders" else re.sub(r"[^A-Za-z0-9._-]+", "-", root.name) or "item")
    items = []
    for i, cls in indexed:
        files = cls.files or (tuple(_image_files(cls.folder)) if cls.folder else ())
        items.append(Item(f"{prefix}-{i:04d}", template.format(concept=cls.concept), cls.concept, files,
                          str(cls.folder) if cls.folder else None))
    return items


def detect_layout(root: Path) -> str:
    """Which known layout ``root`` looks like; ``folders`` when none."""
    if list(root.glob("images_variant_*.txt")) or list(root.glob("data/images_variant_*.txt")):
        return "aircraft"
    images = root / "images"
    if images.is_dir() and any(re.match(r"^\d{3}\.", p.name) for p in images.iterdir() if p.is_dir()):
        return "cub"
    base = root / "train" if (root / "train").is_dir() else root
    folders = [p.name for p in base.iterdir() if p.is_dir()]
    if folders and all(re.match(r"^\d{5}_", f) for f in folders):
        return "inat"
    if folders and all(re.match(r"^n\d{8}$", f) for f in folders):
        return "imagenet"
    return "folders"


def _read_names(names: Path) -> dict[str, str]:
    """``key name`` per line (LOC_synset_mapping.txt, words.txt, classes.txt, a CSV ``key,name``)."""
    if not names.is_file():
        raise ConfigError(f"names file {names} does not exist", hint="pass --names FILE or leave it out")
    out: dict[str, str] = {}
    for n, line in enumerate(names.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _sep, name = re.split(r"([\t ,])", line, maxsplit=1) if re.search(r"[\t ,]", line) else (line, "", "")
        if not name.strip():
            raise ConfigError(f"{names}: line {n}: expected '<folder> <class name>'", hint="one class per line")
        out[key.strip()] = name.strip()
    return out


def _pretty(name: str) -> str:
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip()


def _class_folders(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and _image_files(p))


def _folder_classes(root: Path, names: Path | None, split: str) -> list[_Class]:
    mapping = _read_names(names) if names else {}
    return [_Class(p.name, mapping.get(p.name, _pretty(p.name)), p) for p in _class_folders(root)]


def _imagenet_classes(root: Path, names: Path | None, split: str) -> list[_Class]:
    base = next((b for b in (root / "ILSVRC" / "Data" / "CLS-LOC" / split, root / split, root) if b.is_dir()
                 and any(re.match(r"^n\d{8}$", p.name) for p in b.iterdir())), root)
    if names is None:
        found = [p for p in (root / "LOC_synset_mapping.txt", root / "synset_mapping.txt", root / "words.txt")
                 if p.is_file()]
        if not found:
            raise ConfigError(f"{root}: no names file (LOC_synset_mapping.txt) found for the synset folders",
                              hint="pass --names LOC_synset_mapping.txt (lines 'n01440764 tench, Tinca tinca')")
        names = found[0]
    mapping = _read_names(names)
    out = []
    for p in _class_folders(base):
        name = mapping.get(p.name)
        if name is None:
            raise ConfigError(f"{names}: no name for the synset folder {p.name}", hint="use the names file of this dataset")
        out.append(_Class(p.name, name.split(",")[0].strip(), p))
    return out


def _cub_classes(root: Path, names: Path | None, split: str) -> list[_Class]:
    mapping = _read_names(names) if names else {}
    out = []
    for p in _class_folders(root / "images" if (root / "images").is_dir() else root):
        concept = mapping.get(p.name) or _pretty(re.sub(r"^\d+\.", "", p.name))
        out.append(_Class(p.name, concept, p))
    return out


def _inat_classes(root: Path, names: Path | None, split: str) -> list[_Class]:
    mapping = _read_names(names) if names else {}
    out = []
    for p in _class_folders(root / split if (root / split).is_dir() else root):
        parts = p.name.split("_")
        concept = mapping.get(p.name) or (" ".join(parts[-2:]) if len(parts) >= 3 else _pretty(p.name))
        out.append(_Class(p.name, concept, p))
    return out


def _aircraft_classes(root: Path, names: Path | None, split: str) -> list[_Class]:
    data = root / "data" if (root / "data").is_dir() else root
    labels = data / f"images_variant_{split}.txt"
    if not labels.is_file():
        raise ConfigError(f"{labels} does not exist", hint="pass --split train|val|test|trainval of FGVC-Aircraft")
    by_variant: dict[str, list[str]] = {}
    for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        image_id, _sep, variant = line.strip().partition(" ")
        if not variant:
            raise ConfigError(f"{labels}: line {n}: expected '<image id> <variant>'")
        path = data / "images" / f"{image_id}.jpg"
        if path.is_file():
            by_variant.setdefault(variant.strip(), []).append(str(path.resolve()))
    order = [v.strip() for v in (data / "variants.txt").read_text(encoding="utf-8").splitlines() if v.strip()] \
        if (data / "variants.txt").is_file() else sorted(by_variant)
    mapping = _read_names(names) if names else {}
    return [_Class(v, mapping.get(v, v), None, tuple(sorted(by_variant[v]))) for v in order if v in by_variant]
