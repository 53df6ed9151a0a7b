"""Benchmark set files (YAML, CSV) and the folder-per-class builders."""

import pytest
from PIL import Image

from imagerag_sdk.errors import ConfigError
from imagerag_sdk.eval.sets import build_items, detect_layout, load_set, write_set


def png(path, colour=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def test_yaml_set_resolves_real_image_folders_against_the_set_file(tmp_path):
    png(tmp_path / "data" / "finch" / "a.png")
    png(tmp_path / "data" / "finch" / "b.jpg")
    (tmp_path / "data" / "finch" / "notes.txt").write_text("not an image")
    (tmp_path / "sets").mkdir()
    path = tmp_path / "sets" / "s.yaml"
    path.write_text("items:\n"
                    "  - {id: f1, prompt: A photo of a finch, concept: finch, real_images: ../data/finch}\n"
                    "  - {prompt: A photo of a dog}\n")
    bench = load_set(path)
    first, second = bench.items
    assert first.real_images == (str((tmp_path / "data/finch/a.png").resolve()),
                                 str((tmp_path / "data/finch/b.jpg").resolve()))
    assert (second.id, second.concept, second.real_images) == ("item-0001", "", ())
    assert bench.without_real_images() == ["item-0001"]


def test_csv_set_and_a_written_set_read_back_the_same(tmp_path):
    png(tmp_path / "cls" / "x.png")
    path = tmp_path / "s.csv"
    path.write_text("id,prompt,concept,real_images\na,\"A photo of a cat, sleeping\",cat,cls\nb,A dog,dog,\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # saved by a spreadsheet: a BOM first
    bench = load_set(path)
    assert [i.prompt for i in bench.items] == ["A photo of a cat, sleeping", "A dog"]
    assert bench.items[0].real_images == (str((tmp_path / "cls/x.png").resolve()),)
    again = load_set(write_set(tmp_path / "out" / "s.yaml", bench.items))
    assert [(i.id, i.prompt, i.concept, i.real_images) for i in again.items] == \
        [(i.id, i.prompt, i.concept, i.real_images) for i in bench.items]
    assert "../cls" in (tmp_path / "out" / "s.yaml").read_text()  # relative to the set file


@pytest.mark.parametrize(("name", "text", "message"), [
    ("s.yaml", "items:\n  - {id: a, prompt: x}\n  - {id: b, promt: y}\n", r"s\.yaml: line 3: unknown key 'promt'"),
    ("s.yaml", "items:\n  - {id: a, prompt: x}\n  - {id: b}\n", r"line 3: the item has no prompt"),
    ("s.yaml", "items:\n  - {id: a, prompt: x\n", r"line \d+, column \d+: is not valid YAML"),
    ("s.yaml", "items:\n  - {id: 'a b', prompt: x}\n", r"line 2: id 'a b' is not a plain name"),
    ("s.yaml", "items:\n  - {id: a, prompt: x}\n  - {id: a, prompt: y}\n", r"id 'a' is used twice"),
    ("s.yaml", "items:\n  - {id: a, prompt: x, real_images: nowhere}\n", r"line 2: real_images folder .*nowhere does not exist"),
    ("s.yaml", "items: []\n", r"has no items"),
    ("s.csv", "id,prompt\na,x\nb,y,z\n", r"s\.csv: row 3: more fields than the header"),
    ("s.csv", "id,text\na,x\n", r"row 1: the header has no 'prompt' column"),
    ("s.csv", "id,prompt\na,\n", r"row 2: the item has no prompt"),
    ("s.txt", "x", r"unknown format '\.txt'"),
])
def test_a_bad_set_file_is_one_line_naming_the_line_or_row(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_set(path)
    assert "\n" not in str(info.value)


def test_folders_layout_names_classes_after_folders_and_samples_with_a_fixed_seed(tmp_path):
    for name in ["golden_retriever", "tabby_cat", "red_fox", "empty"]:
        (tmp_path / "ds" / name).mkdir(parents=True)
        if name != "empty":
            png(tmp_path / "ds" / name / "1.png")
    items = build_items(tmp_path / "ds", template="A photo of a {concept}")
    assert [(i.id, i.concept, i.prompt) for i in items] == [
        ("ds-0000", "golden retriever", "A photo of a golden retriever"),
        ("ds-0001", "red fox", "A photo of a red fox"), ("ds-0002", "tabby cat", "A photo of a tabby cat")]
    a = build_items(tmp_path / "ds", limit=2, seed=3)
    assert a == build_items(tmp_path / "ds", limit=2, seed=3)
    assert len(a) == 2 and {i.id for i in a} <= {i.id for i in items}  # ids stable whatever the limit
    seen = {tuple(i.id for i in build_items(tmp_path / "ds", limit=1, seed=s)) for s in range(12)}
    assert len(seen) > 1  # the seed picks the sample
    assert build_items(tmp_path / "ds", limit=2, first=True) == items[:2]


def test_imagenet_layout_reads_the_synset_mapping(tmp_path):
    root = tmp_path / "imagenet"
    png(root / "train" / "n01440764" / "x.JPEG")
    png(root / "train" / "n01443537" / "y.JPEG")
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n")
    assert detect_layout(root) == "imagenet"
    items = build_items(root)
    assert [(i.id, i.concept) for i in items] == [("imagenet-0000", "tench"), ("imagenet-0001", "goldfish")]
    (root / "LOC_synset_mapping.txt").unlink()
    with pytest.raises(ConfigError, match="no names file"):
        build_items(root)


def test_cub_inat_and_aircraft_layouts(tmp_path):
    cub = tmp_path / "CUB_200_2011"
    png(cub / "images" / "001.Black_footed_Albatross" / "a.jpg")
    png(cub / "images" / "002.Laysan_Albatross" / "b.jpg")
    assert detect_layout(cub) == "cub"
    assert [i.concept for i in build_items(cub)] == ["Black footed Albatross", "Laysan Albatross"]

    inat = tmp_path / "inat"
    png(inat / "train" / "00000_Animalia_Arthropoda_Chilopoda_Lithobiomorpha_Lithobiidae_Lithobius_forficatus" / "a.jpg")
    assert detect_layout(inat) == "inat"
    assert [i.concept for i in build_items(inat)] == ["Lithobius forficatus"]

    air = tmp_path / "fgvc-aircraft-2013b"
    for image_id in ("1025794", "1340192", "0056978"):
        png(air / "data" / "images" / f"{image_id}.jpg")
    (air / "data" / "variants.txt").write_text("707-320\nA300B4\n")
    (air / "data" / "images_variant_train.txt").write_text("1025794 707-320\n1340192 707-320\n0056978 A300B4\n")
    assert detect_layout(air) == "aircraft"
    items = build_items(air, template="A photo of a {concept}, a type of aircraft")
    assert [(i.concept, len(i.real_images)) for i in items] == [("707-320", 2), ("A300B4", 1)]
    assert items[1].prompt == "A photo of a A300B4, a type of aircraft"
    again = load_set(write_set(tmp_path / "air.yaml", items))  # a list of files, not a folder
    assert again.items[0].real_images == items[0].real_images


def test_builder_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_items(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no class with images"):
        build_items(tmp_path / "empty")
    with pytest.raises(ConfigError, match="has no {concept}"):
        build_items(tmp_path / "empty", template="A photo")
