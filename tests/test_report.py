"""report.html: rendered from the packaged template over the typed trace; hostile text stays text."""

import re
from html.parser import HTMLParser
from urllib.parse import quote, unquote

import pytest
from PIL import Image

from imagerag_sdk.errors import PipelineError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.testing import FakeGenerator, FakeRetriever, ScriptedCritic

HOSTILE = "<script>alert('x')</script> \"quoted\" & {{ 7 * 7 }} {% raw %}"
CAPTION = "<img src=x onerror=alert(1)> {{ config }}"


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(name for name, _ in attrs)


def parse(html):
    tags = Tags()
    tags.feed(html)
    return tags


def test_hostile_prompt_and_caption_are_shown_as_text(tmp_path):
    answer = {"matches": False, "missing": [{"concept": "a <b>sheep</b>", "caption": CAPTION}]}
    pipe = ImageRAG(FakeGenerator(), ScriptedCritic(answers=[answer], structured=True),
                    FakeRetriever(corpus_dir=str(tmp_path / "corpus")))
    result = pipe.run(HOSTILE, out=tmp_path / "runs")
    html = (result.run_dir / "report.html").read_text()
    tags = parse(html)
    assert "script" not in tags.tags and "onerror" not in tags.attrs and "<b>sheep</b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#34;quoted&#34; &amp; {{ 7 * 7 }} {% raw %}" in html
    assert "&lt;img src=x onerror=alert(1)&gt; {{ config }}" in html
    assert "a &lt;b&gt;sheep&lt;/b&gt;" in html
    assert tags.tags.count("img") == len(re.findall(r'<img src="[^"]+"', html))


def test_initial_and_final_side_by_side_tiny_images_upscaled(tmp_path):
    pipe = ImageRAG(FakeGenerator(size=32), ScriptedCritic(answers=[{"matches": False, "missing": [
        {"concept": "sheep", "caption": "a sheep standing in a green field"}]}], structured=True),
        FakeRetriever(corpus_dir=str(tmp_path / "corpus")))
    result = pipe.run("a sheep", out=tmp_path / "runs")
    html = (result.run_dir / "report.html").read_text()
    compare = html.split('<div class="compare">', 1)[1].split("</section>", 1)[0]
    for name in ("initial.png", "final.png"):
        img = re.search(rf'<img src="{name}"[^>]*>', compare).group(0)
        width = int(re.search(r"width:(\d+)px", img).group(1))
        assert width >= 384 and 'class="pixelated"' in img, img
    assert "image-rendering:pixelated" in html


def test_the_reference_sits_beside_its_concept(tmp_path):
    result = ImageRAG.from_profile("fake").run("an oil painting of a sheep and a car", out=tmp_path)
    html = (result.run_dir / "report.html").read_text()
    for used in result.trace.rounds[0].used:
        card = html.split(f"<h3>{used.concept}</h3>", 1)[1].split('<div class="concept">', 1)[0]
        assert f'<img src="{used.copied_to}"' in card and used.caption in card
        assert f"{used.score:.3f}</span> · <b>used</b> · {used.corpus}" in card


def test_stage_timings_are_a_proportional_bar(tmp_path):
    result = ImageRAG.from_profile("fake").run("a sheep", out=tmp_path)
    html = (result.run_dir / "report.html").read_text()
    widths = [float(w) for w in re.findall(r'<div class="seg [a-z]+ [a-z]+" style="width:([\d.]+)%"', html)]
    stages = result.trace.stages
    assert len(widths) == len(stages) and abs(sum(widths) - 100) < 0.1
    total = sum(s.seconds for s in stages)
    assert all(abs(w - 100 * s.seconds / total) < 0.01 for w, s in zip(widths, stages, strict=True))
    components = html.split("<details><summary>Components", 1)[1].split("</details>", 1)[0]
    assert "fake" in components and "testing.fakes.FakeGenerator" in components


def test_a_failed_run_shows_its_error_first(tmp_path):
    pipe = ImageRAG(FakeGenerator(), ScriptedCritic(fail_with="HTTP 500 <boom>", structured=True),
                    FakeRetriever(corpus_dir=str(tmp_path / "corpus")))
    with pytest.raises(PipelineError, match="HTTP 500"):
        pipe.run("a sheep", out=tmp_path / "runs")
    html = (next((tmp_path / "runs").iterdir()) / "report.html").read_text()
    alert = html.split('<div class="alert error">', 1)[1].split("</div>", 1)[0]
    assert "The run failed" in alert and "HTTP 500 &lt;boom&gt;" in alert
    assert html.index('class="alert error"') < html.index("<h2>Images</h2>")
    assert "no final image (failed)" in html


def test_image_paths_with_odd_characters_still_resolve(tmp_path):
    me = tmp_path / 'me #1 "x"?.png'
    Image.new("RGB", (40, 30), "red").save(me)
    result = ImageRAG.from_profile("fake").run("a portrait of me", user_images=[me], out=tmp_path / "runs")
    html = (result.run_dir / "report.html").read_text()
    [copied] = [u.copied_to for u in result.trace.user_images]
    assert f'<img src="{quote(copied)}"' in html and "%23" in quote(copied)
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (result.run_dir / unquote(src)).is_file(), src
