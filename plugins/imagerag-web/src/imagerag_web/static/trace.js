// imagerag serve: a run drawn from its trace (/api/runs/{id}), as report.html shows it; used by the
// Auto, Run and Compare pages and by the result of Pick & generate.
"use strict";

(() => {
  const {el, api, basename, fmtScore, fmtTime, pill, corpusRoots, hitCaption} = window.imagerag;

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

  Object.assign(window.imagerag, {figure, referenceFigures, renderTrace});
})();
