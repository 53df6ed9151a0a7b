// imagerag serve: the pages' shared helpers (DOM, the JSON API, job progress). Plain JavaScript, no
// build step, no library; loaded before trace.js and app.js, which take these from window.imagerag.
// Text from the server is inserted with textContent / text nodes only, never as markup.
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


  window.imagerag = {
    $, el, basename, fmtScore, fmtTime, pill, api, postJSON, info, corpusRoots, showError, clearError, guarded,
    FINAL, addProgress, followJob, metadataList, hitCaption,
  };
})();
