// imagerag serve: the pages' script (which page: <body data-page>). Plain JavaScript, no build step,
// no library; every piece of data comes from the JSON API under /api (the same API app code uses),
// through the helpers of base.js, and text from the server is inserted as text, never as markup.
"use strict";

(() => {
  const {
    $, el, fmtScore, fmtTime, pill, api, postJSON, info, showError, clearError, guarded, FINAL, addProgress,
    followJob, metadataList, hitCaption, figure, referenceFigures, renderTrace,
  } = window.imagerag;

  // -- the search page (and /generate: the same page with picking) ----------------------------------
  function initSearch(picking) {
    const hitsBox = $("hits");
    const status = $("hits-status");
    const picked = new Map();  // path → hit, in picking order
    let budget = picking ? null : 0;

    function k() {
      return Number($("k").value) || 12;
    }

    function renderPicked() {
      if (!picking) return;
      const list = $("picked");
      list.replaceChildren();
      for (const hit of picked.values()) {
        const remove = el("button", {type: "button", class: "link", text: "remove",
          "aria-label": `Remove ${hitCaption(hit)}`});
        remove.addEventListener("click", () => { picked.delete(hit.path); renderPicked(); refreshPicks(); });
        list.append(el("li", {}, hit.thumb ? el("img", {src: hit.thumb, alt: hitCaption(hit), width: 48, height: 48}) : null,
          el("span", {text: hitCaption(hit)}), remove));
      }
      const limit = budget === null ? "…" : String(budget);
      $("budget").textContent = `Reference budget: ${picked.size} of ${limit} picked`;
      $("budget").classList.toggle("full", budget !== null && picked.size >= budget);
    }

    function toggle(hit, box) {
      if (box.checked) {
        if (budget !== null && picked.size >= budget) {
          box.checked = false;
          showError(new Error(`The generator takes at most ${budget} reference image(s): remove one first.`));
          return;
        }
        clearError();
        picked.set(hit.path, hit);
      } else {
        picked.delete(hit.path);
      }
      renderPicked();
      refreshPicks();
    }

    // Marks the shown hits picked or not, and which cannot be picked any more (in place: focus stays).
    function refreshPicks() {
      const full = budget !== null && picked.size >= budget;
      for (const box of hitsBox.querySelectorAll("input.pick")) {
        const isPicked = picked.has(box.dataset.path);
        box.checked = isPicked;
        box.setAttribute("aria-disabled", String(full && !isPicked));
        box.closest("label").classList.toggle("full", full && !isPicked);
        box.closest("figure").classList.toggle("picked", isPicked);
      }
    }

    function card(hit, index) {
      const caption = hitCaption(hit);
      const more = el("button", {type: "button", class: "similar", text: "More like this",
        "aria-label": `More like ${caption}`});
      more.addEventListener("click", guarded(() => similar(hit)));
      const actions = el("div", {class: "actions"}, more);
      if (picking) {
        const id = `pick-${index}`;
        const box = el("input", {type: "checkbox", id, class: "pick", "data-path": hit.path,
          "aria-label": `Pick ${caption}`});
        box.addEventListener("change", () => toggle(hit, box));
        actions.prepend(el("label", {for: id, class: "picker"}, box, " Pick"));
      }
      // a retriever that names no corpus folder gives no file URL: the hit is shown without a picture
      const picture = hit.thumb ? el("img", {src: hit.thumb, alt: caption, loading: "lazy"})
        : el("div", {class: "missing", text: "no preview"});
      return el("figure", {class: "card hit"},
        hit.file ? el("a", {href: hit.file, target: "_blank", rel: "noopener", title: "Open the full image"}, picture)
          : picture,
        el("figcaption", {},
          el("div", {class: "row spread small"}, el("span", {class: "score", text: `score ${fmtScore(hit.score)}`}),
            el("span", {class: "muted", text: `#${(typeof hit.rank === "number" ? hit.rank : index) + 1} · ${hit.corpus || ""}`})),
          el("p", {class: "caption", text: caption}),
          metadataList(hit.metadata),
          actions));
    }

    function renderHits(hits) {
      hitsBox.replaceChildren(...hits.map(card));
      refreshPicks();
    }

    function showHits(body, what) {
      const hits = body.hits || [];
      status.replaceChildren(`${hits.length} hit(s) for ${what}`);
      if (!picking && what.startsWith("“")) {
        const q = $("q").value.trim();
        status.append(" · ", el("a", {href: `/generate?q=${encodeURIComponent(q)}`, text: "pick from these and generate"}));
      }
      renderHits(hits);
    }

    async function searchText() {
      const text = $("q").value.trim();
      if (!text) throw new Error("Type what to search for, or choose an image.");
      status.textContent = "Searching…";
      showHits(await postJSON("/api/search", {text, k: k()}), `“${text}”`);
      if (picking && !$("prompt").value.trim()) $("prompt").value = text;
    }

    async function searchImage() {
      const file = $("image").files[0];
      if (!file) throw new Error("Choose an image file to search with.");
      const form = new FormData();
      form.append("image", file);
      form.append("k", String(k()));
      status.textContent = "Searching…";
      showHits(await api("/api/search/image", {method: "POST", body: form}), `the image ${file.name}`);
    }

    async function similar(hit) {
      status.textContent = "Searching…";
      showHits(await postJSON("/api/search/similar", {path: hit.path, k: k()}), `images like “${hitCaption(hit)}”`);
    }

    $("search-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(searchText)(); });
    $("image-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(searchImage)(); });

    if (picking) {
      info().then((i) => { budget = i.generator.max_references; renderPicked(); refreshPicks(); }, showError);
      renderPicked();
      initGenerate(picked);
    }
    const q = new URLSearchParams(location.search).get("q");
    if (q) {
      $("q").value = q;
      guarded(searchText)();
    }
  }

  function initGenerate(picked) {
    const progress = $("progress");
    const button = $("generate-btn");

    async function generate() {
      const prompt = $("prompt").value.trim();
      if (!prompt) throw new Error("Write the prompt to generate.");
      const seed = Number($("seed").value) || 0;
      button.disabled = true;
      $("result").hidden = true;
      try {
        const {job} = await postJSON("/api/jobs", {kind: "generate", prompt, references: [...picked.keys()], seed});
        const final = await followJob(job, progress);
        if (final.status !== "done") throw new Error(`The job ${final.status}: ${final.error || "no reason given"}`);
        await showResult(final.run);
      } finally {
        button.disabled = false;
      }
    }

    async function showResult(runId) {
      const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
      const box = $("result-images");
      box.replaceChildren(figure(run.files.final, "Result", `seed ${run.trace.seed}`, "final"));
      const refs = referenceFigures(run, picked);
      box.append(refs.length ? el("div", {class: "refs"}, ...refs) : el("p", {class: "muted", text: "No references."}));
      $("report-link").href = run.files.report;
      $("run-link").href = `/runs/${encodeURIComponent(run.id)}`;
      $("result").hidden = false;
    }

    $("generate-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(generate)(); });
    $("reseed").addEventListener("click", () => {
      $("seed").value = String((Number($("seed").value) || 0) + 1);
      guarded(generate)();
    });
  }

  function initAuto() {
    const progress = $("progress");
    const runBtn = $("run-btn");
    const cancelBtn = $("cancel-btn");
    let current = null;

    async function start() {
      const prompt = $("prompt").value.trim();
      if (!prompt) throw new Error("Write the prompt to run the loop on.");
      const seed = Number($("seed").value) || 0;
      runBtn.disabled = true;
      $("trace").replaceChildren();
      try {
        const {job} = await postJSON("/api/jobs", {kind: "run", prompt, seed});
        current = job.id;
        cancelBtn.hidden = false;
        const final = await followJob(job, progress);
        if (final.run) await renderTrace($("trace"), final.run);
        if (final.status !== "done") throw new Error(`The run ${final.status}: ${final.error || "no reason given"}`);
      } finally {
        current = null;
        cancelBtn.hidden = true;
        runBtn.disabled = false;
      }
    }

    $("auto-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(start)(); });
    cancelBtn.addEventListener("click", guarded(async () => {
      if (!current) return;
      const job = await postJSON(`/api/jobs/${encodeURIComponent(current)}/cancel`, {});
      if (!FINAL.has(job.status)) {
        addProgress(progress, {stage: "cancel", message: "requested: the run stops at the next stage"});
      }
    }));
  }

  // -- runs, one run, compare, corpus ---------------------------------------------------------------
  function initRuns() {
    const box = $("runs");
    const chosen = [];
    const button = $("compare-btn");

    function update() {
      button.disabled = chosen.length !== 2;
      $("compare-status").textContent = chosen.length === 2 ? "Two runs selected." : `Select ${2 - chosen.length} more run(s) to compare.`;
      for (const input of box.querySelectorAll("input.compare")) input.disabled = chosen.length >= 2 && !input.checked;
    }

    guarded(async () => {
      const {runs} = await api("/api/runs");
      $("runs-status").textContent = runs.length ? `${runs.length} run(s)` : "No runs yet: generate something first.";
      box.replaceChildren(...runs.map((run, i) => {
        const id = `cmp-${i}`;
        const input = el("input", {type: "checkbox", id, class: "compare", "data-run": run.id,
          "aria-label": `Compare ${run.prompt || run.id}`});
        input.addEventListener("change", () => {
          const at = chosen.indexOf(run.id);
          if (input.checked && at < 0) chosen.push(run.id);
          if (!input.checked && at >= 0) chosen.splice(at, 1);
          update();
        });
        const open = `/runs/${encodeURIComponent(run.id)}`;
        return el("figure", {class: "card run"},
          el("a", {href: open}, run.thumb ? el("img", {src: run.thumb, alt: run.prompt, loading: "lazy"})
            : el("div", {class: "missing", text: "no image"})),
          el("figcaption", {},
            el("p", {class: "caption"}, el("a", {href: open, text: run.prompt || run.id})),
            el("p", {class: "row"}, pill(run.status, run.status), run.mode ? pill(run.mode) : null,
              el("span", {class: "muted", text: fmtTime(run.created)})),
            run.error ? el("p", {class: "alert warn small", text: run.error}) : null,
            el("div", {class: "actions"},
              el("a", {href: `/files/runs/${encodeURIComponent(run.id)}/report.html`, target: "_blank", rel: "noopener",
                class: "report-link", text: "Report"}),
              el("label", {for: id}, input, " Compare"))));
      }));
      update();
    })();
    button.addEventListener("click", () => {
      if (chosen.length === 2) location.href = `/compare?a=${encodeURIComponent(chosen[0])}&b=${encodeURIComponent(chosen[1])}`;
    });
  }

  function initRun() {
    guarded(() => renderTrace($("trace"), document.body.dataset.runId))();
  }

  function initCompare() {
    const {a, b} = document.body.dataset;
    if (!a || !b) {
      showError(new Error("Pick two runs on the Runs page to compare them."));
      return;
    }
    guarded(() => Promise.all([renderTrace($("side-a"), a), renderTrace($("side-b"), b)]))();
  }

  function initCorpus() {
    guarded(async () => {
      const {corpora} = await api("/api/corpus");
      $("corpus-status").textContent = corpora.length ? `${corpora.length} corpus index(es)` : "No corpus index in this profile.";
      $("corpora").replaceChildren(...corpora.map((c) => el("tr", {},
        el("th", {scope: "row", text: c.name}), el("td", {class: "num", text: c.count}),
        el("td", {text: c.embedder || "–"}), el("td", {text: fmtTime(c.updated)}), el("td", {class: "path", text: c.root}))));
      const i = await info();
      const rows = [["Profile", i.profile], ["Generator", `${i.generator.name} (up to ${i.generator.max_references} reference(s), ${i.generator.conditioning})`],
        ["Critic", i.critic || "none"], ["Retriever", i.retriever || "none"], ["Reranker", i.reranker || "none"],
        ["imagerag-sdk", i.version]];
      $("server").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
    })();
  }

  const PAGES = {
    search: () => initSearch(false), generate: () => initSearch(true), auto: initAuto, runs: initRuns,
    run: initRun, compare: initCompare, corpus: initCorpus,
  };

  document.addEventListener("DOMContentLoaded", () => {
    // ?token=T has set the session cookie (HttpOnly) by now: keep the token out of the address bar
    // and the history
    const url = new URL(location.href);
    if (url.searchParams.has("token")) {
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    info().then((i) => { $("info").textContent = `profile ${i.profile} · ${i.generator.name}`; }, showError);
    const init = PAGES[document.body.dataset.page];
    if (init) init();
  });
})();
