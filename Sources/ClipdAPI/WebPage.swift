import HTTPServer

/// The page at `/`: a search box (text, or an image URL pasted in it), a grid of results with
/// thumbnails served by clipd (`/v1/records/{id}/thumbnail`), captions, tags and scores, and a
/// status panel (`/v1/status`, refreshed every 5 s). Self-contained: no script, style sheet,
/// font or image from anywhere but clipd. `/?q=…` opens with that search done.
enum WebPage {
    static let reply = HTTPEndpoint.Reply(
        status: 200, contentType: "text/html; charset=utf-8", body: html,
        headers: ["Cache-Control": "no-cache",
                  "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'"])

    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>clipd search</title>
    <style>
      body { font: 15px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
      header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; gap: 16px; align-items: center; }
      header h1 { font-size: 18px; margin: 0; font-weight: 600; }
      form { display: flex; gap: 8px; flex: 1; }
      #q { flex: 1; font: inherit; padding: 7px 10px; border-radius: 6px; border: 0; }
      select, button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 0; }
      button { background: #4f7cff; color: #fff; cursor: pointer; }
      main { display: grid; grid-template-columns: 1fr 300px; gap: 20px; padding: 20px; }
      #message { margin: 0 0 12px; color: #555; }
      #message.error { color: #b00020; }
      #results { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 14px; }
      .card { background: #fff; border-radius: 8px; overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
      .card img { width: 100%; aspect-ratio: 1; object-fit: cover; display: block; background: #e4e6ea; }
      .card .body { padding: 8px 10px; }
      .similarity { font-weight: 600; }
      .caption { margin: 4px 0; color: #333; overflow-wrap: anywhere; }
      .id { color: #888; font-size: 12px; overflow-wrap: anywhere; }
      .tag { display: inline-block; background: #eef2ff; color: #2b3f8f; border-radius: 10px; padding: 1px 8px; margin: 2px 2px 0 0; font-size: 12px; }
      aside { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 3px rgba(0,0,0,.12); align-self: start; }
      aside h2 { font-size: 15px; margin: 12px 0 6px; }
      aside h2:first-child { margin-top: 0; }
      aside table { width: 100%; border-collapse: collapse; font-size: 13px; }
      aside td { padding: 2px 0; }
      aside td.n { text-align: right; font-variant-numeric: tabular-nums; }
      .bar { height: 6px; background: #e4e6ea; border-radius: 3px; }
      .bar div { height: 6px; background: #4f7cff; border-radius: 3px; }
      @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
    </style>
    </head>
    <body>
    <header>
      <h1>clipd</h1>
      <form id="search">
        <input id="q" name="q" autocomplete="off" placeholder="Describe an image, or paste an image URL" aria-label="query">
        <select id="limit" aria-label="results"><option>12</option><option selected>24</option><option>48</option><option>96</option></select>
        <button type="submit">Search</button>
      </form>
    </header>
    <main>
      <section>
        <p id="message">Type a description (or paste an image URL) and press Enter.</p>
        <div id="results"></div>
      </section>
      <aside id="status"><h2>Status</h2><p>loading…</p></aside>
    </main>
    <script>
    "use strict";
    const $ = (id) => document.getElementById(id);
    const el = (tag, props, ...children) => {
      const node = Object.assign(document.createElement(tag), props || {});
      for (const child of children) node.append(child);
      return node;
    };
    const isURL = (text) => /^(https?|file):\/\//i.test(text);

    async function search(query, limit) {
      const message = $("message");
      message.className = "";
      message.textContent = "Searching…";
      const parameter = isURL(query) ? "image_url" : "text";
      try {
        const response = await fetch(`/v1/search?${parameter}=${encodeURIComponent(query)}&limit=${limit}`);
        const body = await response.json();
        if (!response.ok) throw new Error(body.error ? `${body.error.type}: ${body.error.message}` : response.statusText);
        render(body);
        message.textContent = `${body.results.length} result${body.results.length === 1 ? "" : "s"} for “${query}” (model version ${body.model_version_name}, #${body.model_version})`;
      } catch (error) {
        $("results").replaceChildren();
        message.className = "error";
        message.textContent = `Search failed: ${error.message}`;
      }
    }

    function render(body) {
      $("results").replaceChildren(...body.results.map((hit) => {
        const tags = el("div", { className: "tags" }, ...hit.tags.filter((t) => t.rank <= 3).map((t) =>
          el("span", { className: "tag", title: t.label_set }, `${t.label} ${t.score.toFixed(2)}`)));
        return el("div", { className: "card result" },
          el("img", { src: hit.thumbnail_url, alt: hit.caption || hit.record_id, loading: "lazy" }),
          el("div", { className: "body" },
            el("div", { className: "similarity" }, `similarity ${hit.similarity.toFixed(3)}`),
            el("div", { className: "caption" }, hit.caption || ""),
            tags,
            el("div", { className: "id" }, el("a", { href: `/v1/records/${encodeURIComponent(hit.record_id)}` }, hit.record_id))));
      }));
    }

    function row(label, value) {
      return el("tr", {}, el("td", {}, label), el("td", { className: "n" }, String(value)));
    }

    async function refreshStatus() {
      try {
        const response = await fetch("/v1/status");
        const status = await response.json();
        if (!response.ok) throw new Error(status.error ? status.error.message : response.statusText);
        const panel = [el("h2", {}, "Stream")];
        if (status.stream) {
          const s = status.stream;
          const rate = s.records_per_second == null ? "…" : s.records_per_second.toFixed(1);
          panel.push(el("table", {}, row("records/s", rate), row("written", s.written), row("failed", s.failed), row("consumed", s.consumed),
            ...s.lag.map((p) => row(`lag ${p.topic}[${p.partition}]`, p.lag))));
        } else {
          panel.push(el("p", {}, "API only (no stream in this process)."));
        }
        panel.push(el("h2", {}, "Model versions"));
        panel.push(el("table", {}, ...status.model_versions.map((v) => el("tr", {},
          el("td", {}, `#${v.id} ${v.name}${v.active ? " · active" : ""}${v.search ? " · search" : ""}`,
            el("div", { className: "bar", title: `${v.covered} / ${v.total}` }, el("div", { style: `width:${(100 * v.coverage).toFixed(1)}%` }))),
          el("td", { className: "n" }, `${(100 * v.coverage).toFixed(0)}%`)))));
        panel.push(el("h2", {}, "Failures by class"));
        const failures = Object.entries(status.failures_by_class);
        panel.push(failures.length ? el("table", {}, ...failures.map(([name, n]) => row(name, n))) : el("p", {}, "none"));
        $("status").replaceChildren(...panel);
      } catch (error) {
        $("status").replaceChildren(el("h2", {}, "Status"), el("p", { className: "error" }, `unavailable: ${error.message}`));
      }
    }

    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      const query = $("q").value.trim();
      if (!query) return;
      history.replaceState(null, "", `/?q=${encodeURIComponent(query)}`);
      search(query, $("limit").value);
    });
    const initial = new URLSearchParams(location.search).get("q");
    if (initial) { $("q").value = initial; search(initial, $("limit").value); }
    refreshStatus();
    setInterval(refreshStatus, 5000);
    </script>
    </body>
    </html>
    """#
}
