// imagerag serve: the pages' script. Plain JavaScript, no build step, no library.
// Every piece of data comes from the JSON API under /api (the same API app code uses); text from the
// server is inserted with textContent / text nodes only, never as markup.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // -- small DOM helpers ------------------------------------------------------------------------
  // el("a", {class: "x", href: "/", text: "hi"}, child, "text", …): attributes are set with
  // setAttribute (no event-handler attributes are ever built from data), children are nodes or text.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function basename(path) {
    return String(path || "").split(/[\\/]/).pop();
  }

  function fmtScore(score) {
    return typeof score === "number" ? score.toFixed(3) : "–";
  }

  function fmtTime(iso) {
    if (!iso) return "never";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function pill(text, kind) {
    return el("span", {class: `pill ${kind || ""}`, text});
  }

  // -- the API ----------------------------------------------------------------------------------
  async function api(path, options) {
    const response = await fetch(path, {credentials: "same-origin", ...(options || {})});
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;  // not JSON: the status line says what went wrong
    }
    if (!response.ok) {
      const reason = body && body.error ? body.error : `${response.status} ${response.statusText}`;
      throw new Error(reason);
    }
    return body;
  }

  function postJSON(path, data) {
    return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data)});
  }

  let infoPromise = null;
  function info() {
    if (!infoPromise) infoPromise = api("/api/info");
    return infoPromise;
  }

  let rootsPromise = null;
  // corpus name → root folder, to show a trace's candidate hits through /thumbs/corpus/…
  function corpusRoots() {
    if (!rootsPromise) {
      rootsPromise = api("/api/corpus").then(
        (body) => (body.corpora || []).map((c) => ({name: c.name, root: String(c.root || "")})),
        () => []);
    }
    return rootsPromise;
  }

  function showError(err) {
    const box = $("error");
    box.textContent = err && err.message ? err.message : String(err);
    box.hidden = false;
  }

  function clearError() {
    const box = $("error");
    box.textContent = "";
    box.hidden = true;
  }

  function guarded(fn) {
    return async (...args) => {
      clearError();
      try {
        return await fn(...args);
      } catch (err) {
        showError(err);
        return undefined;
      }
    };
  }

  // -- jobs: live progress over server-sent events -------------------------------------------------
  const FINAL = new Set(["done", "failed", "cancelled"]);

  function addProgress(list, event) {
    const when = event.time ? new Date(event.time).toLocaleTimeString() : "";
    list.append(el("li", {class: "stage"}, el("b", {text: event.stage || "…"}), " ",
      event.message || "", when ? el("span", {class: "muted", text: ` ${when}`}) : null));
    list.scrollTop = list.scrollHeight;
  }

  async function pollJob(id) {
    for (;;) {
      const job = await api(`/api/jobs/${encodeURIComponent(id)}`);
      if (FINAL.has(job.status)) return job;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  // Follows a job's events into `list`; resolves with the final JOB. If the stream breaks before
  // its end event, falls back to polling the job (the events shown so far stay).
  function followJob(job, list) {
    list.replaceChildren(el("li", {class: "stage"}, el("b", {text: "queued"}), ` job ${job.id}`));
    return new Promise((resolve, reject) => {
      const source = new EventSource(`/api/jobs/${encodeURIComponent(job.id)}/events`);
      let ended = false;
      source.addEventListener("stage", (e) => addProgress(list, JSON.parse(e.data)));
      source.addEventListener("end", (e) => {
        ended = true;
        source.close();
        const final = JSON.parse(e.data);
        list.append(el("li", {class: `stage end ${final.status}`}, el("b", {text: final.status}),
          final.error ? ` ${final.error}` : ""));
        list.scrollTop = list.scrollHeight;
        resolve(final);
      });
      source.onerror = () => {
        if (ended) return;
        source.close();
        pollJob(job.id).then(resolve, reject);
      };
    });
  }

  // -- hits ---------------------------------------------------------------------------------------
  function metadataList(metadata) {
    const entries = Object.entries(metadata || {}).filter(([key]) => key !== "caption");
    if (!entries.length) return null;
    const dl = el("dl", {class: "meta"});
    for (const [key, value] of entries) {
      dl.append(el("dt", {text: key}), el("dd", {text: typeof value === "object" ? JSON.stringify(value) : value}));
    }
    return el("details", {class: "meta"}, el("summary", {text: "metadata"}), dl);
  }

  function hitCaption(hit) {
    return hit.caption || (hit.metadata && hit.metadata.caption) || basename(hit.path);
  }

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

  // -- run traces (auto, one run, compare) ------------------------------------------------------------
  function figure(src, label, caption, cls) {
    return el("figure", {class: `shot ${cls || ""}`},
      el("div", {class: "label", text: label}),
      src ? el("a", {href: src, target: "_blank", rel: "noopener"}, el("img", {src, alt: `${label}: ${caption || ""}`}))
        : el("div", {class: "missing", text: "no image"}),
      caption ? el("figcaption", {text: caption}) : null);
  }

  function runFile(run, rel) {
    return rel ? `/files/runs/${encodeURIComponent(run.id)}/${rel.split("/").map(encodeURIComponent).join("/")}` : null;
  }

  // The references a run generated with (picked, or used by its last round), as figures;
  // `known` (path → hit) supplies captions the trace lacks (picks sent as paths).
  function referenceFigures(run, known) {
    const trace = run.trace;
    let refs = trace.picked || [];
    if (!refs.length && trace.rounds && trace.rounds.length) refs = trace.rounds[trace.rounds.length - 1].used || [];
    return refs.map((r, i) => figure(runFile(run, r.copied_to) || (run.files.references || [])[i],
      `Reference ${i + 1}`, `${r.caption || (known && known.has(r.path) ? hitCaption(known.get(r.path)) : basename(r.path))}${typeof r.score === "number" ? ` · ${fmtScore(r.score)}` : ""}`,
      "ref"));
  }

  function corpusThumb(path, roots) {
    for (const {name, root} of roots) {
      const base = root.endsWith("/") ? root : `${root}/`;
      if (root && path.startsWith(base)) {
        const rel = path.slice(base.length).split("/").map(encodeURIComponent).join("/");
        return `/thumbs/corpus/${encodeURIComponent(name)}/${rel}?size=160`;
      }
    }
    return null;
  }

  function roundSection(run, round, roots) {
    const section = el("section", {class: "round"}, el("h3", {text: `Round ${round.round}`}));
    const c = round.critique;
    if (c) {
      section.append(el("p", {class: "row"}, pill(c.matches ? "matches the prompt" : "does not match", c.matches ? "match" : "nomatch"),
        el("span", {class: "muted", text: `${c.attempts} attempt(s)${c.gave_up ? ", critic gave up" : ""}`})));
    } else {
      section.append(el("p", {}, pill("no critique", "warn")));
    }
    const notes = [...(round.notes || []), ...((c && c.notes) || [])];
    if (notes.length) section.append(el("ul", {class: "notes"}, ...notes.map((n) => el("li", {text: n}))));
    if (round.rephrase) section.append(el("p", {}, el("b", {text: "Rephrased: "}), round.rephrase.prompt));
    if (c && c.missing && c.missing.length) {
      section.append(el("table", {class: "table"},
        el("caption", {class: "muted", text: "Missing concepts and the captions written to retrieve them"}),
        el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Concept"}), el("th", {scope: "col", text: "Caption"}))),
        el("tbody", {}, ...c.missing.map((m) => el("tr", {}, el("td", {text: m.concept}), el("td", {text: m.caption}))))));
    }
    const used = new Map((round.used || []).map((u) => [`${u.query}\u0000${u.path}`, u]));
    const dropped = new Map((round.dropped || []).map((d) => [`${d.query}\u0000${d.path}`, d.reason]));
    const hitsByQuery = round.reranked || round.hits || {};
    for (const [query, hits] of Object.entries(hitsByQuery)) {
      const strip = el("div", {class: "strip"});
      for (const hit of hits) {
        const u = used.get(`${query}\u0000${hit.path}`);
        const src = (u && runFile(run, u.copied_to)) || corpusThumb(hit.path, roots);
        const why = u ? "used" : dropped.get(`${query}\u0000${hit.path}`) || "not used";
        const caption = (hit.metadata && hit.metadata.caption) || basename(hit.path);
        strip.append(el("figure", {class: `cand ${u ? "used" : "dropped"}`},
          src ? el("img", {src, alt: caption, loading: "lazy"}) : el("div", {class: "missing", text: basename(hit.path)}),
          el("figcaption", {}, el("span", {class: "score", text: fmtScore(hit.score)}), " ", caption, el("br"),
            u ? pill("used", "match") : el("span", {class: "muted", text: why}))));
      }
      section.append(el("div", {class: "query"}, el("div", {class: "label", text: "Query"}), el("p", {class: "caption", text: query}), strip));
    }
    return section;
  }

  async function renderTrace(box, runId) {
    const [run, roots] = await Promise.all([api(`/api/runs/${encodeURIComponent(runId)}`), corpusRoots()]);
    const t = run.trace;
    const head = el("section", {class: "head"},
      el("h2", {text: t.prompt}),
      el("p", {class: "row"}, pill(t.status, t.status), pill(t.mode), t.matched === true ? pill("matched", "match")
        : t.matched === false ? pill("not matched", "nomatch") : null,
      el("span", {class: "muted", text: `seed ${t.seed} · ${t.profile || "no profile"} · ${fmtTime(t.started_at)}${
        typeof t.seconds === "number" ? ` · ${t.seconds.toFixed(1)} s` : ""}`})),
      el("p", {class: "row"}, el("a", {href: run.files.report, target: "_blank", rel: "noopener", class: "report-link",
        text: "Open report.html"}), el("a", {href: `/runs/${encodeURIComponent(run.id)}`, text: "Permalink"})));
    const parts = [head];
    if (t.error) parts.push(el("p", {class: "alert error", text: t.error}));
    if (t.critic_error) parts.push(el("p", {class: "alert warn", text: `Critic: ${t.critic_error}`}));
    const images = el("div", {class: "side-by-side"});
    const gens = t.generations || [];
    if (run.files.initial && t.mode !== "picked") images.append(figure(run.files.initial, "Initial", gens.length ? gens[0].prompt : ""));
    for (const g of gens.slice(1, -1)) images.append(figure(runFile(run, g.image), `Round ${g.round}`, g.prompt));
    images.append(figure(run.files.final, "Final", gens.length ? gens[gens.length - 1].prompt : "", "final"));
    parts.push(el("section", {}, images));
    const refs = referenceFigures(run);
    if (refs.length) parts.push(el("section", {}, el("h3", {text: "References generated with"}), el("div", {class: "refs"}, ...refs)));
    for (const round of t.rounds || []) parts.push(roundSection(run, round, roots));
    box.replaceChildren(...parts);
    return run;
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
