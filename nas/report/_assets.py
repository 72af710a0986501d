"""The dashboard's stylesheet and script (plain strings, inlined into the page).

The script reads the JSON the page embeds (``#nas-data``), draws the static figures, and keeps
one selection: a click on a scatter point, a heatmap column or a table row selects that arch;
the selection ring, the heatmap column, the table row, the details and the breakdown follow.
It writes user strings with ``textContent`` only, never as HTML. ``window.nasDashboard``
exposes ``ready``, ``selected`` (the arch id), ``select(archId)`` and ``timings`` for tests and
the benchmark.
"""

from __future__ import annotations

__all__ = ["CSS", "SCRIPT"]

CSS = """
:root { --fg: #1d1d1f; --dim: #6b6b6b; --line: #e2e2e6; --accent: #d62728; --bg: #f5f5f7; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
header { padding: 14px 24px 6px; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 15px; margin: 0 0 6px; }
.sub { margin: 0; color: var(--dim); }
.dim { color: var(--dim); font-weight: normal; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.banner { margin: 8px 24px; padding: 10px 14px; border-radius: 6px; background: #fff3e0;
  border: 1px solid #f0a830; }
.banner.warn { background: #fdecea; border-color: #e57373; }
.note { margin: 8px 24px; padding: 7px 14px; border-radius: 6px; background: #eef4fb;
  border: 1px solid #b8d0ea; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 14px;
  padding: 8px 24px 24px; }
@media (max-width: 1100px) { main { grid-template-columns: minmax(0, 1fr); } }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 14px; min-width: 0; }
.card.full { grid-column: 1 / -1; }
.card-head { display: flex; justify-content: space-between; align-items: baseline; gap: 8px; }
.card-head button { font: inherit; font-size: 12px; padding: 2px 10px; border-radius: 4px;
  border: 1px solid #bbb; background: #fafafa; cursor: pointer; }
.hint { color: var(--dim); margin: 0 0 4px; font-size: 12px; }
.plot { width: 100%; }
.pair { display: flex; gap: 8px; }
.pair > div { flex: 1 1 0; min-width: 0; }
.empty { color: var(--dim); }
.table-wrap { max-height: 440px; overflow: auto; }
table.front { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.front th, table.front td { padding: 4px 10px; border-bottom: 1px solid var(--line);
  text-align: right; white-space: nowrap; }
table.front th:nth-child(2), table.front td:nth-child(2),
table.front th:last-child, table.front td:last-child { text-align: left; }
table.front th { position: sticky; top: 0; background: #fafafa; cursor: pointer;
  user-select: none; font-weight: 600; }
table.front th[data-dir="asc"]::after { content: " \\25B2"; font-size: 10px; }
table.front th[data-dir="desc"]::after { content: " \\25BC"; font-size: 10px; }
table.front tbody tr { cursor: pointer; }
table.front tbody tr:hover { background: #f2f6fc; }
table.front tbody tr.selected { background: #fde3e3; }
a.arch, .arch-id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.arch-head { display: flex; align-items: center; gap: 10px; margin-bottom: 6px; }
.arch-id { font-size: 16px; font-weight: 700; }
.tag { font-size: 11px; padding: 1px 8px; border-radius: 10px; background: #eee; }
.tag.front { background: #e3f1e3; color: #1b5e20; }
.tag.infeasible { background: #fdecea; color: #b71c1c; }
dl.values, dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px;
  margin: 0 0 6px; }
dl.values dt, dl.meta dt { color: var(--dim); }
dl.values dd, dl.meta dd { margin: 0; }
table.ops { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
table.ops td { padding: 1px 8px 1px 0; white-space: nowrap; }
table.ops td:first-child { color: var(--dim); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 12px; margin-top: 4px; }
.legend i, table.ops i { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 4px; vertical-align: -1px; }
.bd-summary { font-size: 12px; color: var(--dim); margin: 4px 0 0; }
.cmds { margin-top: 8px; }
.cmd { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.cmd code { flex: 1 1 auto; min-width: 0; overflow-x: auto; white-space: nowrap;
  background: #f6f6f8; padding: 2px 6px; border-radius: 4px; }
button.copy, button.pin { font: inherit; font-size: 11px; padding: 1px 8px; border-radius: 4px;
  border: 1px solid #bbb; background: #fafafa; cursor: pointer; }
button.pin { margin-top: 8px; }
.compare-wrap { max-width: 100%; overflow-x: auto; }
.compare-wrap h3 { font-size: 13px; margin: 10px 0 4px; }
table.compare { border-collapse: collapse; font-size: 12px; table-layout: fixed; width: 100%; }
table.compare th { width: 28%; }
table.compare th, table.compare td { padding: 1px 10px 1px 0; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
table.compare th { color: var(--dim); font-weight: normal; }
table.compare tr.diff td { font-weight: 700; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var dash = window.nasDashboard = {interactive: false, ready: false, selected: null, errors: [],
                                     timings: {}};
  var D = JSON.parse(document.getElementById("nas-data").textContent);
  var S = D.data, F = D.figs, T = S.trials, A = S.archs;
  var CONFIG = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"]};
  var QUIET = Object.assign({}, CONFIG, {displayModeBar: false});
  var OP_COLOURS = {};
  var BASE = {};  // each plot's own shapes (budget lines), before the selection ring
  var state = {arch: -1, trial: -1, view3d: false, pinned: -1};

  function el(id) { return document.getElementById(id); }
  function make(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2013";
    var s = Number(v).toPrecision(4);
    if (s.indexOf("e") < 0 && s.indexOf(".") >= 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s;
  }
  function esc(s) {  // for text that plotly renders (it understands a little HTML)
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function sum(xs) { var s = 0; for (var i = 0; i < xs.length; i++) s += xs[i]; return s; }
  function opOf(key) { var i = key.indexOf("("); return i < 0 ? key : key.slice(0, i); }

  if (S.parts) {
    S.parts.kinds.forEach(function (k, i) {
      if (S.parts.temporal[i]) OP_COLOURS[k] = S.parts.colours[i];
    });
  }

  // ------------------------------------------------------------------ selection

  function ring(id, t, y) {
    var div = el(id);
    if (!div || !div._fullLayout) return;
    var shapes = (BASE[id] || []).slice();
    var x = t >= 0 ? T.x[t] : null;
    if (x !== null && y !== null && y !== undefined) {
      shapes.push({type: "circle", xref: "x", yref: "y", xsizemode: "pixel",
                   ysizemode: "pixel", xanchor: x, yanchor: y, x0: -12, x1: 12, y0: -12,
                   y1: 12, line: {color: "#d62728", width: 3}});
    }
    Plotly.relayout(div, {shapes: shapes});
  }

  function ring3d(t) {
    var div = el("plot-cost");
    if (!div || !div.data) return;
    var ok = t >= 0 && T.x[t] !== null && T.quality[t] !== null;
    Plotly.restyle(div, {x: [ok ? [T.x[t]] : []], y: [ok ? [T.peak_mem_mb[t]] : []],
                         z: [ok ? [T.quality[t]] : []]}, [div.data.length - 1]);
  }

  function highlightColumn(a) {
    var div = el("plot-heatmap");
    if (!div || !div._fullLayout || !S.heat_cols.length) return;
    var r = a >= 0 ? S.heat_cols.indexOf(a) : -1;
    var shapes = (BASE["plot-heatmap"] || []).slice();
    if (r >= 0) {
      shapes.push({type: "rect", xref: "x", yref: "paper", x0: r - 0.5, x1: r + 0.5,
                   y0: 0, y1: 1, line: {color: "#111111", width: 3}});
    }
    Plotly.relayout(div, {shapes: shapes});
  }

  function highlightRow(a) {
    var table = el("front-table");
    if (!table) return;
    var rows = table.tBodies[0].rows, id = a >= 0 ? A.ids[a] : null;
    for (var i = 0; i < rows.length; i++) {
      var on = rows[i].getAttribute("data-arch") === id;
      rows[i].classList.toggle("selected", on);
      if (on) {  // scroll inside the table only, never the page
        var wrap = table.parentNode, rr = rows[i].getBoundingClientRect();
        var wr = wrap.getBoundingClientRect();
        if (rr.top < wr.top + 28 || rr.bottom > wr.bottom) {
          wrap.scrollTop += rr.top - wr.top - wr.height / 2;
        }
      }
    }
  }

  function showDetails(a, t) {
    var box = el("details");
    box.textContent = "";
    var head = make("div", "arch-head");
    var id = make("span", "arch-id", A.ids[a]);
    id.id = "selected-arch";
    head.appendChild(id);
    var r = A.front[a], feas = T.feasible[t] === 1;
    head.appendChild(make("span", "tag " + (r >= 0 ? "front" : feas ? "feasible" : "infeasible"),
                          r >= 0 ? "Pareto front #" + (r + 1) : feas ? "feasible, dominated"
                                                               : "over budget"));
    box.appendChild(head);
    var dl = make("dl", "values");
    function row(k, v) { dl.appendChild(make("dt", null, k)); dl.appendChild(make("dd", null, v)); }
    row("trial", T.number[t] + " (" + S.states[T.state[t]].toLowerCase() + ")");
    row("latency", fmt(T.latency_s_video[t]) + " s/video \u00b7 " + fmt(T.latency_ms_step[t]) +
        " ms/step");
    row("peak memory", fmt(T.peak_mem_mb[t]) + " MB (weights " + fmt(T.weights_mb[t]) + " MB)");
    if (S.has_quality) {
      row("quality", fmt(T.quality[t]) + (S.statuses[T.status[t]] ?
          " (" + S.statuses[T.status[t]] + ")" : ""));
    }
    box.appendChild(dl);
    if (A.yaml[a]) {
      var p = make("p", null, "arch file: ");
      var link = make("a", null, A.yaml[a]);
      link.href = A.yaml[a];
      p.appendChild(link);
      box.appendChild(p);
    }
    var idx = A.choices[a] || [];
    var ops = make("table", "ops");
    S.groups.forEach(function (g, gi) {
      var key = idx[gi] >= 0 ? g.choices[idx[gi]] : "?";
      var tr = make("tr");
      tr.appendChild(make("td", null, g.name));
      var td = make("td");
      var sw = make("i");
      sw.style.background = OP_COLOURS[opOf(key)] || "#e8e8e8";
      td.appendChild(sw);
      td.appendChild(document.createTextNode(key));
      tr.appendChild(td);
      ops.appendChild(tr);
    });
    box.appendChild(ops);
    var summary = make("p", "bd-summary");
    summary.id = "breakdown-summary";
    box.appendChild(summary);
    box.appendChild(commands(a));
    box.appendChild(pinButton(a));
    if (state.pinned >= 0 && state.pinned !== a) box.appendChild(comparison(state.pinned, a));
  }

  // ------------------------------------------------------------------ commands, comparison

  function quoted(path) {
    return /^[\w.\/:=+-]+$/.test(path) ? path : "'" + path.replace(/'/g, "'\\''") + "'";
  }
  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    return ok;
  }
  function copyText(text, btn) {
    dash.lastCopy = text;
    function done(ok) {
      btn.textContent = ok ? "copied" : "select the line to copy";
      setTimeout(function () { btn.textContent = "copy"; }, 1500);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { done(true); },
                                               function () { done(fallbackCopy(text)); });
    } else {
      done(fallbackCopy(text));
    }
  }
  function commands(a) {
    var box = make("div", "cmds");
    box.id = "commands";
    if (!A.yaml[a]) {
      box.appendChild(make("p", "hint", "Only front arches have an arch file (archs/<id>.yaml): " +
                           "select one for its train, export and generate commands."));
      return box;
    }
    var arch = "--arch " + quoted(S.run_dir + "/" + A.yaml[a]) + " --space " +
      quoted(S.run_dir + "/space.yaml");
    var out = quoted("experiments/train/" + A.ids[a]);
    [["train", "nas train " + arch + " --steps 2000 --out " + out],
     ["export", "nas export " + arch + " --format coreml"],
     ["generate", "nas generate " + arch + " --checkpoint " + out +
      " --prompt '3 moves left fast' --out " + quoted(A.ids[a] + ".mp4")]].forEach(function (c) {
      var row = make("div", "cmd");
      row.appendChild(make("code", null, c[1]));
      var btn = make("button", "copy", "copy");
      btn.type = "button";
      btn.setAttribute("data-cmd", c[0]);
      btn.addEventListener("click", function () { copyText(c[1], btn); });
      row.appendChild(btn);
      box.appendChild(row);
    });
    return box;
  }
  function pinButton(a) {
    var text = state.pinned === a ? "pinned for comparison: click another arch"
      : state.pinned >= 0 ? "compare with this one instead" : "compare with another arch";
    var btn = make("button", "pin", text);
    btn.type = "button";
    btn.id = "pin-arch";
    btn.addEventListener("click", function () {
      state.pinned = state.pinned === a ? -1 : a;
      select(state.arch, state.trial);
    });
    return btn;
  }
  function levelMs(a) {  // latency per step by level (backbone and temporal), from the parts
    var P = S.parts, idx = A.choices[a];
    if (!P || !idx || idx.indexOf(-1) >= 0 || idx.length !== P.choices.length) return null;
    var out = P.wheres.map(function () { return 0; });
    P.backbone.forEach(function (c) { out[c[0]] += c[2]; });
    idx.forEach(function (c, g) { P.choices[g][c].forEach(function (x) { out[x[0]] += x[2]; }); });
    return out;
  }
  function comparison(b, a) {
    var ta = A.trial[b], tb = state.trial;
    var table = make("table", "compare");
    table.id = "compare";
    function add(label, x, y, differ) {
      var tr = make("tr", differ ? "diff" : null);
      tr.appendChild(make("th", null, label));
      tr.appendChild(make("td", null, x));
      tr.appendChild(make("td", null, y));
      table.appendChild(tr);
    }
    add("", A.ids[b], A.ids[a], false);
    function num(label, col, unit) {
      var x = T[col][ta], y = T[col][tb];
      add(label, fmt(x) + unit, fmt(y) + unit, x !== y);
    }
    num("latency", "latency_s_video", " s/video");
    num("latency per step", "latency_ms_step", " ms");
    num("peak memory", "peak_mem_mb", " MB");
    num("weights", "weights_mb", " MB");
    if (S.has_quality) num("quality", "quality", "");
    var ib = A.choices[b] || [], ia = A.choices[a] || [];
    S.groups.forEach(function (g, gi) {
      var x = ib[gi] >= 0 ? g.choices[ib[gi]] : "?", y = ia[gi] >= 0 ? g.choices[ia[gi]] : "?";
      add(g.name, x, y, x !== y);
    });
    var lb = levelMs(b), la = levelMs(a);
    if (lb && la) {
      S.parts.wheres.forEach(function (w, i) {
        add(w + " (ms/step)", fmt(lb[i]), fmt(la[i]), Math.abs(lb[i] - la[i]) > 1e-9);
      });
    }
    var wrap = make("div", "compare-wrap");
    wrap.appendChild(make("h3", null, "Side by side (differences in bold)"));
    wrap.appendChild(table);
    return wrap;
  }

  function drawBreakdown(a, t) {
    var P = S.parts, msDiv = el("plot-breakdown-ms"), mbDiv = el("plot-breakdown-mem");
    var summary = el("breakdown-summary");
    var idx = A.choices[a];
    if (!P || !idx || idx.length !== P.choices.length || idx.indexOf(-1) >= 0) {
      if (summary) {
        summary.textContent = P ? "No breakdown: this arch's choices are not in the space."
                                : "No breakdown: the run's latency table could not be read.";
      }
      Plotly.purge(msDiv); Plotly.purge(mbDiv);
      return;
    }
    var ms = {}, mb = {};
    function add(c) {
      if (!ms[c[1]]) {
        ms[c[1]] = P.wheres.map(function () { return 0; });
        mb[c[1]] = P.wheres.map(function () { return 0; });
      }
      ms[c[1]][c[0]] += c[2];
      mb[c[1]][c[0]] += c[3];
    }
    P.backbone.forEach(add);
    idx.forEach(function (c, g) { P.choices[g][c].forEach(add); });
    var kinds = Object.keys(ms).map(Number).sort(function (x, y) { return x - y; });
    var msT = [], mbT = [], total = 0, temporal = 0, weights = 0;
    kinds.forEach(function (k) {
      var s = sum(ms[k]);
      total += s;
      if (P.temporal[k]) temporal += s;
      weights += sum(mb[k]);
      var common = {type: "bar", name: P.labels[k], x: P.wheres, marker: {color: P.colours[k]},
                    legendgroup: P.labels[k]};
      msT.push(Object.assign({y: ms[k], hovertemplate: "%{x} " + esc(P.labels[k]) +
                              ": %{y:.4g} ms<extra></extra>"}, common));
      mbT.push(Object.assign({y: mb[k], showlegend: false, hovertemplate: "%{x} " +
                              esc(P.labels[k]) + ": %{y:.4g} MB<extra></extra>"}, common));
    });
    function lay(title, unit, legend) {
      return {barmode: "stack", height: 340, showlegend: legend,
              title: {text: title, font: {size: 12}, x: 0, xanchor: "left"},
              margin: {l: 48, r: 8, t: 30, b: legend ? 40 : 40},
              legend: {orientation: "h", y: -0.18, font: {size: 10}},
              xaxis: {type: "category", tickfont: {size: 10}},
              yaxis: {title: {text: unit}, rangemode: "tozero"}, font: {size: 11}};
    }
    var step = total + P.overhead_ms;
    Plotly.react(msDiv, msT, lay("latency per step by level and kind: " + fmt(step) + " ms", "ms",
                                 false), QUIET);
    Plotly.react(mbDiv, mbT, lay("weights by level and kind: " + fmt(weights) + " MB", "MB",
                                 false), QUIET);
    var peak = T.peak_mem_mb[t];
    var act = peak === null ? null : peak - weights - P.overhead_mb;
    if (summary) {
      summary.textContent = "per step: backbone " + fmt(total - temporal) + " ms + temporal " +
        fmt(temporal) + " ms + overhead " + fmt(P.overhead_ms) + " ms = " + fmt(step) +
        " ms. Peak memory " + fmt(peak) + " MB = weights " + fmt(weights) +
        " + largest live activations " + fmt(act) + " + runtime overhead " +
        fmt(P.overhead_mb) + " MB.";
    }
    drawKindLegend(kinds);
  }

  function drawKindLegend(kinds) {
    var box = el("breakdown-legend");
    if (!box) return;
    box.textContent = "";
    kinds.forEach(function (k) {
      var s = make("span", "key");
      var sw = make("i");
      sw.style.background = S.parts.colours[k];
      s.appendChild(sw);
      s.appendChild(document.createTextNode(S.parts.labels[k]));
      box.appendChild(s);
    });
  }

  function select(a, t) {
    if (a < 0 || a >= A.ids.length) return;
    if (t === undefined || t === null || t < 0 || T.arch[t] !== a) t = A.trial[a];
    state.arch = a;
    state.trial = t;
    var yname = S.y_column;
    ring("plot-front", t, T[yname][t]);
    if (state.view3d) ring3d(t); else ring("plot-cost", t, T.peak_mem_mb[t]);
    highlightColumn(a);
    highlightRow(a);
    showDetails(a, t);
    drawBreakdown(a, t);
    dash.selected = A.ids[a];
    try {
      if (window.history && history.replaceState) {
        history.replaceState(null, "", "#arch=" + A.ids[a]);
      }
    } catch (e) { /* file:// pages may refuse; the selection still works */ }
  }
  dash.select = function (archId) { select(A.ids.indexOf(archId)); return dash.selected; };
  dash.pin = function (archId) {
    state.pinned = A.ids.indexOf(archId);
    if (state.arch >= 0) select(state.arch, state.trial);
  };

  // ------------------------------------------------------------------ plots and wiring

  function bindScatter(id) {
    var div = el(id);
    if (!div) return;
    div.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (!p || !p.customdata) return;
      var t = p.customdata[0];
      if (T.arch[t] >= 0) select(T.arch[t], t);
    });
  }

  function bindHeatmap() {
    var div = el("plot-heatmap");
    if (!div || !S.heat_cols.length) return;
    div.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (!p) return;
      var col = Array.isArray(p.pointNumber) ? p.pointNumber[1] : p.pointIndex;
      if (typeof col === "number" && col >= 0 && col < S.heat_cols.length) {
        select(S.heat_cols[col]);
      }
    });
  }

  function bindTable() {
    var table = el("front-table");
    if (!table) return;
    var ths = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths, function (th) {
      th.addEventListener("click", function () {
        var col = th.cellIndex, num = th.getAttribute("data-type") === "num";
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        Array.prototype.forEach.call(ths, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var a = r1.cells[col].getAttribute("data-v"), b = r2.cells[col].getAttribute("data-v");
          var c;
          if (num) {
            var x = a === "" ? Infinity : parseFloat(a), y = b === "" ? Infinity : parseFloat(b);
            c = x < y ? -1 : x > y ? 1 : 0;
          } else {
            c = a < b ? -1 : a > b ? 1 : 0;
          }
          return dir === "asc" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    table.tBodies[0].addEventListener("click", function (ev) {
      if (ev.target.closest("a")) return;  // the YAML link opens the file
      var tr = ev.target.closest("tr");
      if (tr) select(A.ids.indexOf(tr.getAttribute("data-arch")));
    });
  }

  function build3d() {
    var rest = [], fr = [];
    for (var t = 0; t < T.x.length; t++) {
      if (T.x[t] === null || T.quality[t] === null || T.peak_mem_mb[t] === null) continue;
      if (S.states[T.state[t]] !== "COMPLETE") continue;
      var a = T.arch[t];
      if (a >= 0 && A.front[a] >= 0 && A.trial[a] === t) fr.push(t); else rest.push(t);
    }
    function trace(ii, name, marker) {
      return {type: "scatter3d", mode: "markers", name: name, marker: marker,
              x: ii.map(function (i) { return T.x[i]; }),
              y: ii.map(function (i) { return T.peak_mem_mb[i]; }),
              z: ii.map(function (i) { return T.quality[i]; }),
              customdata: ii.map(function (i) { return [i, T.number[i]]; }),
              text: ii.map(function (i) { return esc(A.ids[T.arch[i]]); }),
              hovertemplate: "trial %{customdata[1]}<br>arch %{text}<br>latency %{x:.4g}<br>" +
                             "memory %{y:.4g} MB<br>quality %{z:.4g}<extra></extra>"};
    }
    var data = [
      trace(rest, "feasible (" + rest.length + ")", {size: 3, color: "#7aa6d6", opacity: 0.7}),
      trace(fr, "Pareto front (" + fr.length + ")", {size: 6, color: "#111111"}),
      {type: "scatter3d", mode: "markers", name: "selected", x: [], y: [], z: [],
       hoverinfo: "skip", showlegend: false,
       marker: {size: 10, color: "rgba(0,0,0,0)", line: {color: "#d62728", width: 4}}}
    ];
    var layout = {height: 460, margin: {l: 0, r: 0, t: 10, b: 0},
                  legend: {orientation: "h", y: 1.02, x: 0},
                  scene: {xaxis: {title: {text: esc(S.latency_label)}},
                          yaxis: {title: {text: "peak memory (MB)"}},
                          zaxis: {title: {text: "quality"}}}};
    return {data: data, layout: layout};
  }

  function bindToggle() {
    var btn = el("toggle-3d"), div = el("plot-cost");
    if (!btn || !div) return;
    btn.addEventListener("click", function () {
      state.view3d = !state.view3d;
      var fig = state.view3d ? build3d() : F.cost;
      btn.textContent = state.view3d ? "2-D view" : "3-D view";
      Plotly.react(div, fig.data, fig.layout, CONFIG).then(function () {
        var t = state.trial;
        if (state.view3d) ring3d(t); else ring("plot-cost", t, t >= 0 ? T.peak_mem_mb[t] : null);
      });
    });
  }

  function draw(id, fig) {
    var div = el(id);
    if (!div || !fig) return Promise.resolve();
    BASE[id] = JSON.parse(JSON.stringify((fig.layout && fig.layout.shapes) || []));
    return Plotly.newPlot(div, fig.data, fig.layout, CONFIG);
  }

  function initial() {
    var m = /[#&]arch=([0-9A-Za-z_-]+)/.exec(window.location.hash || "");
    var a = m ? A.ids.indexOf(m[1]) : -1;
    if (a < 0 && S.front.length) a = S.front[0];
    return a;
  }

  // The main scatter first: the page is interactive once it is drawn and wired; the other
  // figures follow, one per task, so a click is never queued behind all of them.
  function later(id, fig, after) {
    return function () {
      return new Promise(function (resolve) { setTimeout(resolve, 0); })
        .then(function () { return draw(id, fig); })
        .then(function () { if (el(id) && el(id)._fullLayout && after) after(); });
    };
  }
  var rest = [
    later("plot-heatmap", F.heatmap, function () {
      bindHeatmap();
      highlightColumn(state.arch);
    }),
    later("plot-cost", F.cost, function () {
      bindScatter("plot-cost");
      bindToggle();
      ring("plot-cost", state.trial, state.trial >= 0 ? T.peak_mem_mb[state.trial] : null);
    }),
    later("plot-hv", F.hv, null)
  ];

  dash.timings.start = performance.now();
  draw("plot-front", F.front)
    .then(function () {
      bindScatter("plot-front");
      bindTable();
      var a = initial();
      if (a >= 0) select(a);
      dash.timings.interactive = performance.now();
      dash.interactive = true;
      return rest.reduce(function (p, step) { return p.then(step); }, Promise.resolve());
    })
    .then(function () {
      dash.timings.ready = performance.now();
      dash.ready = true;
      document.body.setAttribute("data-ready", "1");
    })
    .catch(function (e) {
      dash.errors.push(String(e && e.stack || e));
      console.error(e);
    });
})();
"""
