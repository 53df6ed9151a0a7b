"""The scoring path decodes the next batch's images in threads while the scorer scores this one
(eval/prefetch.py): order, isolation of an unreadable image, one read and decode per file, Ctrl-C."""

import json
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from imagerag_sdk import images
from imagerag_sdk.eval import runner
from imagerag_sdk.testing.colour import ColourScorer

BATCH = 5  # the set has 12 units: batches of 5, 5 and 2


def generated(bench, tmp_path, colour_profile):
    """A plan whose 12 units are generated and whose scores are removed: only the scoring runs."""
    args = runner.system_args([str(colour_profile(tmp_path, "colour"))], [], [])
    runner.run(runner.plan(bench, args, ["colour"], tmp_path / "out", batch_size=BATCH), show_progress=False)
    shutil.rmtree(tmp_path / "out" / "cache" / "score")
    return runner.plan(bench, args, ["colour"], tmp_path / "out", batch_size=BATCH)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def record_decodes(monkeypatch):
    """Each decoded image carries the name of its file; the names in decoding order; a condition
    notified at each decode."""
    real, names, changed = images.decode_rgb, [], threading.Condition()

    def decode(data, *, name="<bytes>", **kwargs):
        image = real(data, name=name, **kwargs)
        image.info["decoded_from"] = name
        with changed:
            names.append(name)
            changed.notify_all()
        return image

    monkeypatch.setattr(images, "decode_rgb", decode)
    return names, changed


def test_the_next_batch_is_decoded_while_one_is_scored_in_order_and_every_unit_scored(bench, tmp_path, colour_profile,
                                                                                       monkeypatch):
    p = generated(bench, tmp_path, colour_profile)
    names, changed = record_decodes(monkeypatch)
    real_score, calls, ahead = ColourScorer.score, [], []

    def score(self, batch):
        if not calls:  # the first batch: the next one's images are being decoded meanwhile
            mine = {item.image.info["decoded_from"] for item in batch}
            with changed:  # a generous bound, not a timing: without prefetch no such decode ever comes
                ahead.append(changed.wait_for(lambda: any(n not in mine for n in names), timeout=30))
        calls.append([item.prompt for item in batch])
        return real_score(self, batch)

    monkeypatch.setattr(ColourScorer, "score", score)
    summary = runner.run(p, show_progress=False)
    assert ahead == [True]
    assert [len(c) for c in calls] == [10, 10, 4]  # initial + final of 5, 5 and 2 units
    assert [prompt for c in calls for prompt in c[::2]] == [u.item.prompt for u in p.units()]
    assert all(r["status"] == "done" and not r["error"] and "colour" in r["scores"] for r in rows(p.out))
    assert summary["systems"][0]["metrics"]["colour"]["diff"]["n"] == 12


def test_a_corrupt_png_in_the_middle_fails_only_its_unit_and_its_batch_is_scored_in_one_call(
        bench, tmp_path, colour_profile, monkeypatch):
    p = generated(bench, tmp_path, colour_profile)
    before = rows(p.out)
    bad = before[6]  # the second batch's second unit
    (p.out / bad["final_image"]).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    real_score, calls = ColourScorer.score, []
    monkeypatch.setattr(ColourScorer, "score", lambda self, batch: calls.append(len(batch)) or real_score(self, batch))
    runner.run(p, show_progress=False)
    after = rows(p.out)
    assert calls == [10, 8, 4]  # the other four units of its batch still scored together
    failed = [r for r in after if r["error"]]
    assert [r["item"] for r in failed] == [bad["item"]] and failed[0]["scores"] == {}
    error = failed[0]["error"]
    assert "\n" not in error and error.startswith("scorer 'colour' failed:") and bad["final_image"] in error
    assert all("colour" in r["scores"] for r in after if r is not failed[0])


def test_each_file_is_read_once_and_an_unchanged_final_image_decoded_once(bench, tmp_path, colour_profile,
                                                                           monkeypatch):
    p = generated(bench, tmp_path, colour_profile)
    same = rows(p.out)[3]
    shutil.copyfile(p.out / same["initial_image"], p.out / same["final_image"])
    names, _ = record_decodes(monkeypatch)
    reads: Counter[str] = Counter()
    real_read, real_write, scoring, decoded = Path.read_bytes, runner.write_results, [True], []

    def read_bytes(self):
        if self.suffix == ".png" and scoring[0]:
            reads[str(self)] += 1
        return real_read(self)

    def write_results(*args):  # the results pages read the images again: not the scoring path
        scoring[0] = False
        decoded.extend(names)
        return real_write(*args)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(runner, "write_results", write_results)
    runner.run(p, show_progress=False)
    files = [str(p.out / r[k]) for r in rows(p.out) for k in ("initial_image", "final_image")]
    assert reads == Counter(files)  # every initial and final file read once, nothing else
    unchanged = str(p.out / same["initial_image"])
    assert Counter(decoded) == Counter(f for f in files if f != str(p.out / same["final_image"]))
    assert decoded.count(unchanged) == 1
    assert all("colour" in r["scores"] for r in rows(p.out))


def test_ctrl_c_in_the_scorer_leaves_no_thread_running(bench, tmp_path, colour_profile, monkeypatch):
    p = generated(bench, tmp_path, colour_profile)
    p.batch_size = 2  # 6 batches: several are queued when the second is scored
    real_score, calls = ColourScorer.score, []

    def score(self, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_score(self, batch)

    monkeypatch.setattr(ColourScorer, "score", score)
    threads = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        runner.run(p, show_progress=False)
    assert set(threading.enumerate()) == threads
    assert calls == [4, 4]
    assert len(list((p.out / "cache" / "score").rglob("*"))) > 0  # the first batch's scores stay cached
