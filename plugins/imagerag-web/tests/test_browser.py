"""The web app in a real browser: headless Chromium driven through Selenium, against the real app
served by uvicorn on 127.0.0.1, over the ``fake`` components and a real corpus index of captioned
images (built here with the fake embedder).

Skipped only when Chromium or chromedriver is missing and ``IMAGERAG_REQUIRE_BROWSER`` is unset
(scripts/test.sh sets it, so CI fails instead). ``IMAGERAG_SCREENSHOTS=DIR`` saves a PNG of every
page into DIR (docs/images holds the published ones).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image, PngImagePlugin

from imagerag_sdk.testing.fakes import FakeGenerator
from imagerag_sdk.types import Reference

pytestmark = pytest.mark.slow

WAIT = 120  # seconds a wait may take before the test fails (never an assertion on time)
WINDOW = (1366, 900)  # a laptop screen


def _browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


BROWSER = _browser()
if BROWSER is None and not os.environ.get("IMAGERAG_REQUIRE_BROWSER"):
    pytest.skip("Chromium or chromedriver is not installed (bash scripts/setup-env.sh installs Debian's "
                "chromium + chromium-driver); set IMAGERAG_REQUIRE_BROWSER=1 to fail instead",
                allow_module_level=True)

# imported after the skip: selenium comes with the test tools (requirements/test.txt)
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait


def _profile(tmp: Path) -> Path:
    from imagerag_sdk.index import ingest
    from imagerag_sdk.testing.fakes import fake_corpus

    corpus = fake_corpus(tmp / "corpus")
    ingest(corpus, corpus="web-test", index_dir=tmp / "index", embedder={"use": "fake"}, progress=None)
    path = tmp / "web-test.yaml"
    path.write_text(yaml.safe_dump({
        "name": "web-test",
        "generator": {"use": "fake", "size": 128, "max_references": 3},
        "critic": {"use": "fake"},
        "retriever": {"use": "index", "index_dir": str(tmp / "index")},
        "loop": {"mode": "captions", "max_concepts": "auto", "images_per_concept": 1, "max_rounds": 1},
    }))
    return path


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1, on a port the OS picked; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(WAIT * 20):  # uvicorn sets .started once it listens
        if srv.started or not thread.is_alive():
            break
        started.wait(0.05)
    assert srv.started, "uvicorn did not start (see the log above)"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=WAIT)
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app over the fake components and a real corpus index, its jobs in a worker process
    built from the same profile (as ``imagerag serve`` runs them by default); its base URL."""
    import functools

    from imagerag_sdk.profiles import build_pipeline
    from imagerag_web.app import create_app

    tmp = tmp_path_factory.mktemp("web")
    profile = _profile(tmp)
    app = create_app(build_pipeline(profile), runs_dir=str(tmp / "runs"), jobs="process",
                     recreate=functools.partial(build_pipeline, profile))
    with _serve(app) as base:
        yield base


class GatedGenerator(FakeGenerator):
    """A FakeGenerator that waits for ``gate`` before painting (``entered`` says it is waiting)."""

    name = "gated"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def generate(self, prompt: str, references: Sequence[Reference] = (), *, seed: int | None = None) -> Any:
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        return super().generate(prompt, references, seed=seed)


TOKEN = "s3cret-web-token"


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GatedGenerator]]:
    """The app with a token, over a generator the test holds; (base URL, generator)."""
    from imagerag_sdk.index import IndexRetriever
    from imagerag_sdk.pipeline import ImageRAG
    from imagerag_sdk.testing.fakes import FakeCritic
    from imagerag_web.app import create_app

    tmp = tmp_path_factory.mktemp("web-gated")
    _profile(tmp)
    gen = GatedGenerator(size=64, max_references=3)
    pipeline = ImageRAG(gen, FakeCritic(), IndexRetriever(index_dir=str(tmp / "index")), profile="web-gated")
    try:
        with _serve(create_app(pipeline, runs_dir=str(tmp / "runs"), token=TOKEN)) as base:
            yield base, gen
    finally:
        gen.gate.set()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if BROWSER is None:
        pytest.fail("IMAGERAG_REQUIRE_BROWSER is set but chromium / chromedriver is missing: "
                    "bash scripts/setup-env.sh installs Debian's chromium + chromium-driver")
    chromium, chromedriver = BROWSER
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, condition: Callable[[Any], Any], what: str) -> Any:
    return WebDriverWait(driver, WAIT).until(condition, message=f"waited {WAIT} s for {what}")


def no_error(driver: WebDriver) -> None:
    """The page's error box is hidden, and the console logged no error."""
    box = driver.find_element(By.ID, "error")
    assert not box.is_displayed(), f"the page shows an error: {box.text}"
    # report.html (the run folder's own page) names no icon, so the browser asks for /favicon.ico
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]
    assert not severe, f"browser console errors: {severe}"


def loaded(img: WebElement) -> bool:
    """The image was fetched and decoded (naturalWidth > 0)."""
    return bool(img.parent.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))


def wait_loaded(driver: WebDriver, images: str | Sequence[WebElement], what: str) -> None:
    """Wait until every image (matching a CSS selector, or the elements given) is loaded, then scroll
    back to the top. An image not loaded yet is scrolled into view first, as a reader scrolls to it:
    the pages' ``loading="lazy"`` images load only within about 1,250 px of the viewport, and the
    images above them may load first and push them out of reach."""
    pending: list[str] = []

    def condition(drv: WebDriver) -> bool:
        found = drv.find_elements(By.CSS_SELECTOR, images) if isinstance(images, str) else images
        waiting = [i for i in found if not loaded(i)]
        pending[:] = [i.get_attribute("src") or "" for i in waiting]
        if waiting:
            drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", waiting[0])
        return not waiting

    try:
        wait(driver, condition, what)
    except TimeoutException as exc:
        raise AssertionError(f"waited {WAIT} s for {what}; not loaded: {pending}") from exc
    driver.execute_script("window.scrollTo(0, 0)")


def job_done(base: str, job_id: str) -> Callable[[Any], bool]:
    """A wait condition: the job finished; fails at once if it failed or was cancelled."""
    def done(_drv: Any) -> bool:
        status = api(base, f"/api/jobs/{job_id}")["status"]
        assert status in ("queued", "running", "done"), f"job {job_id} {status}"
        return bool(status == "done")
    return done


def screenshot(driver: WebDriver, name: str) -> None:
    """With IMAGERAG_SCREENSHOTS=DIR, save the whole page as DIR/web-NAME.png."""
    target = os.environ.get("IMAGERAG_SCREENSHOTS")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], max(WINDOW[1], min(int(height) + 140, 2400)))
    try:
        png = driver.get_screenshot_as_png()
    finally:
        driver.set_window_size(*WINDOW)
    # a flat UI: 256 colours keep it sharp at a fifth of the size
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        Path(target) / f"web-{name}.png", optimize=True)


def api(base: str, path: str, data: dict[str, Any] | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        return json.loads(resp.read())


def test_search_pick_two_generate_and_open_the_report(server: str, browser: WebDriver, tmp_path: Path) -> None:
    d = browser
    d.get(server + "/")
    wait(d, lambda drv: drv.find_element(By.ID, "info").text.startswith("profile web-test"), "the server info")
    d.find_element(By.ID, "q").send_keys("a red sports car")
    d.find_element(By.ID, "search-btn").click()
    cards = wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#hits figure.hit"), "search hits")
    first = cards[0].find_element(By.CSS_SELECTOR, ".caption").text
    assert "red sports car" in first
    assert "score" in cards[0].find_element(By.CSS_SELECTOR, ".score").text
    wait_loaded(d, "#hits img", "thumbnails")
    no_error(d)
    screenshot(d, "search")

    # "more like this" on the second hit: other corpus images (the hit itself left out)
    second = cards[1].find_element(By.CSS_SELECTOR, ".caption").text
    cards[1].find_element(By.CSS_SELECTOR, "button.similar").click()
    wait(d, lambda drv: "images like" in drv.find_element(By.ID, "hits-status").text, "similar hits")
    assert second in d.find_element(By.ID, "hits-status").text
    similar = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#hits figure.hit .caption")]
    assert similar and second not in similar

    # search by an uploaded image: a PNG captioned like the car (the fake embedder reads the caption)
    upload = tmp_path / "query.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("caption", "a red sports car parked on a street")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(upload, pnginfo=info)
    d.find_element(By.ID, "image").send_keys(str(upload))
    d.find_element(By.ID, "image-btn").click()
    wait(d, lambda drv: "the image query.png" in drv.find_element(By.ID, "hits-status").text, "image search hits")
    assert d.find_element(By.CSS_SELECTOR, "#hits figure.hit .caption").text == "a red sports car parked on a street"
    no_error(d)

    # pick and generate
    d.get(server + "/generate?q=" + urllib.parse.quote("a sheep and a red car"))
    wait(d, lambda drv: "of 3 picked" in drv.find_element(By.ID, "budget").text, "the reference budget")
    boxes = wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#hits input.pick"), "hits to pick")
    assert len(boxes) >= 4
    picked, captions = [], []
    for i in range(2):
        card = d.find_elements(By.CSS_SELECTOR, "#hits figure.hit")[i]
        card.find_element(By.CSS_SELECTOR, "input.pick").click()
        picked.append(card.find_element(By.CSS_SELECTOR, "input.pick").get_attribute("data-path"))
        captions.append(card.find_element(By.CSS_SELECTOR, ".caption").text)
        assert "picked" in (card.get_attribute("class") or "")
    assert d.find_element(By.ID, "budget").text == "Reference budget: 2 of 3 picked"
    assert len(d.find_elements(By.CSS_SELECTOR, "#picked li")) == 2
    # the budget is enforced: a fourth pick is refused with a message, and not picked
    d.find_elements(By.CSS_SELECTOR, "#hits input.pick")[2].click()
    d.find_elements(By.CSS_SELECTOR, "#hits input.pick")[3].click()
    wait(d, lambda drv: drv.find_element(By.ID, "error").is_displayed(), "the budget refusal")
    assert "at most 3 reference" in d.find_element(By.ID, "error").text
    assert not d.find_elements(By.CSS_SELECTOR, "#hits input.pick")[3].is_selected()
    d.find_elements(By.CSS_SELECTOR, "#hits input.pick")[2].click()  # back to two
    assert d.find_element(By.ID, "budget").text == "Reference budget: 2 of 3 picked"

    prompt = d.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys("a poster of a sheep beside a red car")
    d.find_element(By.ID, "generate-btn").click()
    result = wait(d, ec.visibility_of_element_located((By.ID, "result")), "the generated image")
    stages = d.find_elements(By.CSS_SELECTOR, "#progress li")
    assert any("generate" in s.text for s in stages), [s.text for s in stages]
    assert d.find_element(By.CSS_SELECTOR, "#progress li.end").text.startswith("done")
    final = result.find_element(By.CSS_SELECTOR, ".shot.final img")
    wait_loaded(d, [final], "the final image to load")
    refs = result.find_elements(By.CSS_SELECTOR, ".shot.ref img")
    assert len(refs) == 2
    shown = [f.text for f in result.find_elements(By.CSS_SELECTOR, ".shot.ref figcaption")]
    assert [c in t for c, t in zip(captions, shown, strict=True)] == [True, True], (captions, shown)
    wait_loaded(d, refs, "the reference images")
    no_error(d)
    screenshot(d, "generate")

    # the run the page made holds exactly the two picks
    run_url = d.find_element(By.ID, "run-link").get_attribute("href") or ""
    run = api(server, "/api/runs/" + run_url.rsplit("/", 1)[1])
    assert [p["path"] for p in run["trace"]["picked"]] == picked
    assert run["trace"]["prompt"] == "a poster of a sheep beside a red car"

    # another seed: a second run with seed 1
    d.find_element(By.ID, "reseed").click()
    wait(d, lambda drv: drv.find_element(By.ID, "run-link").get_attribute("href") != run_url
         and drv.find_element(By.ID, "result").is_displayed(), "the run with another seed")
    assert d.find_element(By.ID, "seed").get_attribute("value") == "1"

    # the report opens in a new tab, its images load
    d.find_element(By.ID, "report-link").click()
    wait(d, lambda drv: len(drv.window_handles) == 2, "the report tab")
    d.switch_to.window(d.window_handles[1])
    wait(d, lambda drv: drv.title.startswith("imagerag run: a poster of a sheep"), "report.html")
    imgs = d.find_elements(By.TAG_NAME, "img")
    assert imgs
    wait_loaded(d, imgs, "the report's images")
    d.close()
    d.switch_to.window(d.window_handles[0])


def test_auto_runs_the_loop_and_shows_the_trace(server: str, browser: WebDriver) -> None:
    d = browser
    d.get(server + "/auto")
    d.find_element(By.ID, "prompt").send_keys("an oil painting of a sheep and a car")
    d.find_element(By.ID, "run-btn").click()
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#trace .round"), "the run's trace")
    trace = d.find_element(By.ID, "trace")
    assert "does not match" in trace.find_element(By.CSS_SELECTOR, ".round .pill").text
    concepts = [td.text for td in trace.find_elements(By.CSS_SELECTOR, ".round tbody td:first-child")]
    assert concepts, "no missing concept shown"
    assert trace.find_elements(By.CSS_SELECTOR, ".cand.used"), "no used reference shown"
    # images_per_concept 1: each query shows at most one used hit (an image used for another
    # query is shown with the reason it was not used here)
    per_query = [len(q.find_elements(By.CSS_SELECTOR, ".cand.used")) for q in trace.find_elements(By.CSS_SELECTOR, ".query")]
    assert per_query and max(per_query) == 1, per_query
    wait_loaded(d, "#trace .shot img, #trace .cand img", "the trace's images")
    assert trace.find_element(By.CSS_SELECTOR, ".shot.final img")
    assert (trace.find_element(By.CSS_SELECTOR, "a.report-link").get_attribute("href") or "").endswith("/report.html")
    no_error(d)
    screenshot(d, "auto")


def test_runs_page_and_compare_two_runs(server: str, browser: WebDriver) -> None:
    d = browser
    for seed in (4, 5, 6):  # three runs made through the API, as app code would
        job = api(server, "/api/jobs", {"kind": "run", "prompt": f"a cat on a sofa, seed {seed}", "seed": seed})["job"]
        wait(d, job_done(server, job["id"]), "the API runs")
    runs = api(server, "/api/runs")["runs"]
    d.get(server + "/runs")
    cards = wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#runs figure.run"), "the runs")
    assert [c.find_element(By.CSS_SELECTOR, "input.compare").get_attribute("data-run") for c in cards] == \
        [r["id"] for r in runs]  # in the API's order: newest first
    first, second = runs[0]["prompt"], runs[1]["prompt"]
    assert first in cards[0].text and second in cards[1].text
    wait_loaded(d, "#runs img", "run thumbnails")
    button = d.find_element(By.ID, "compare-btn")
    assert not button.is_enabled()
    for card in cards[:2]:
        card.find_element(By.CSS_SELECTOR, "input.compare").click()
    assert button.is_enabled()
    assert not cards[2].find_element(By.CSS_SELECTOR, "input.compare").is_enabled()  # two at most
    no_error(d)
    screenshot(d, "runs")
    button.click()
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#side-a .shot.final img")
         and drv.find_elements(By.CSS_SELECTOR, "#side-b .shot.final img"), "both runs side by side")
    assert d.find_element(By.CSS_SELECTOR, "#side-a h2").text == first
    assert d.find_element(By.CSS_SELECTOR, "#side-b h2").text == second
    wait_loaded(d, ".shot img", "the compared images")
    no_error(d)
    screenshot(d, "compare")

    # one run's page, from the compare view's permalink
    d.find_element(By.CSS_SELECTOR, "#side-a a[href^='/runs/']").click()
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#trace .shot.final img"), "the run page")
    assert d.find_element(By.CSS_SELECTOR, "#trace h2").text == first
    no_error(d)
    screenshot(d, "run")


def test_corpus_page_and_text_stays_text(server: str, browser: WebDriver) -> None:
    d = browser
    d.get(server + "/corpus")
    row = wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#corpora tr"), "the corpus table")[0]
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[0] == "web-test" and cells[1] == "12" and cells[2] == "fake-bow/dim=64", cells
    assert cells[3] != "never"
    wait(d, lambda drv: "fake" in drv.find_element(By.ID, "server").text, "the server facts")
    no_error(d)
    screenshot(d, "corpus")

    # markup in a query is shown as text, never run or parsed
    d.get(server + "/")
    d.find_element(By.ID, "q").send_keys('<img src=x onerror="document.title=1">')
    d.find_element(By.ID, "search-btn").click()
    wait(d, lambda drv: "hit(s) for" in drv.find_element(By.ID, "hits-status").text, "the search")
    assert '<img src=x onerror="document.title=1">' in d.find_element(By.ID, "hits-status").text
    assert not d.find_elements(By.CSS_SELECTOR, "#hits-status img")
    assert d.title != "1"


def test_a_bad_request_shows_the_servers_reason(server: str, browser: WebDriver) -> None:
    d = browser
    d.get(server + "/runs/no-such-run")
    box = wait(d, ec.visibility_of_element_located((By.ID, "error")), "the error box")
    assert box.text and "Traceback" not in box.text
    d.get_log("browser")  # the 404 is logged by the browser; drop it


def test_with_a_token_the_pages_work_after_token_once_and_cancel_stops_a_run(
        gated_server: tuple[str, GatedGenerator], browser: WebDriver) -> None:
    base, gen = gated_server
    d = browser
    d.delete_all_cookies()
    d.get(base + "/auto")  # no token: refused, with the reason
    assert "a token is required" in d.find_element(By.TAG_NAME, "body").text
    d.get_log("browser")  # the 401 is logged by the browser; drop it
    d.get(base + f"/auto?token={TOKEN}")
    wait(d, lambda drv: drv.find_element(By.ID, "info").text.startswith("profile web-gated"), "the server info")
    assert "token" not in d.current_url  # the cookie carries it now, the address bar does not
    assert TOKEN not in d.page_source

    d.find_element(By.ID, "prompt").send_keys("a sheep and a car")
    d.find_element(By.ID, "run-btn").click()
    assert gen.entered.wait(WAIT), "the run never reached the generator"
    cancel = wait(d, ec.element_to_be_clickable((By.ID, "cancel-btn")), "the Cancel button")
    cancel.click()
    wait(d, lambda drv: any("cancel" in li.text for li in drv.find_elements(By.CSS_SELECTOR, "#progress li")),
         "the cancel request")
    gen.gate.set()  # the generation ends; the run stops at the next stage
    end = wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#progress li.end"), "the end of the job")[0]
    assert end.text.startswith("cancelled"), end.text
    box = wait(d, ec.visibility_of_element_located((By.ID, "error")), "the page's account of the cancel")
    assert "cancelled" in box.text
    status = wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#trace .head .pill"), "the run's trace")[0]
    assert status.text == "interrupted"  # the run folder's trace says so
    assert not d.find_element(By.ID, "cancel-btn").is_displayed()
    d.get_log("browser")
