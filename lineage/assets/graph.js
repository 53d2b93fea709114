/* Tidemark's lineage graph views: zoom, pan, search and details on click around an SVG laid out by
 * Graphviz. Used inline by `tidemark lineage graph -o FILE.html` and by the Airflow plugin's pages.
 * Each `.tm-graph-view` holds a `.tm-canvas` (the SVG), a `.tm-details` panel, a toolbar, and a
 * `<script type="application/json" class="tm-graph-data">` with the nodes' details, found beside it.
 */
(function () {
  "use strict";

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function show(details, node) {
    details.innerHTML = "";
    details.appendChild(text("h3", node.title));
    details.appendChild(text("p", node.kind + (node.sub ? " · " + node.sub : ""), "tm-kind"));
    var dl = document.createElement("dl");
    Object.keys(node.details || {}).forEach(function (key) {
      if (key === "links") return;
      var value = node.details[key];
      dl.appendChild(text("dt", key));
      var dd = document.createElement("dd");
      if (value !== null && typeof value === "object") {
        dd.appendChild(text("pre", JSON.stringify(value, null, 2)));
      } else {
        dd.textContent = String(value);
      }
      dl.appendChild(dd);
    });
    details.appendChild(dl);
    (node.details.links || []).forEach(function (link) {
      var a = text("a", link.text, "tm-link");
      a.href = link.href;
      details.appendChild(a);
    });
  }

  function init(view) {
    var svg = view.querySelector(".tm-canvas svg");
    var dataEl = view.querySelector(".tm-graph-data") || document.querySelector(".tm-graph-data");
    if (!svg || !dataEl) return;
    var data = JSON.parse(dataEl.textContent);
    var byId = {};
    data.nodes.forEach(function (n) { byId[n.id] = n; });
    var details = view.querySelector(".tm-details");
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.style.width = "100%";
    svg.style.height = "100%";
    // Graphviz's own tooltips (<title>) would cover the details panel's job: keep them as titles only.
    var panZoom = window.svgPanZoom(svg, {
      zoomEnabled: true, controlIconsEnabled: false, fit: true, center: true,
      minZoom: 0.02, maxZoom: 40, dblClickZoomEnabled: false, zoomScaleSensitivity: 0.3
    });

    function element(id) { return svg.querySelector("#" + CSS.escape(id)); }

    function focus(id) {
      var el = element(id);
      if (!el) return;
      if (panZoom.getSizes().realZoom < 0.6) panZoom.zoom(panZoom.getZoom() * 0.8 / panZoom.getSizes().realZoom);
      var box = el.getBoundingClientRect(), frame = svg.getBoundingClientRect();
      panZoom.panBy({ x: frame.left + frame.width / 2 - (box.left + box.width / 2), y: frame.top + frame.height / 2 - (box.top + box.height / 2) });
    }

    function select(id) {
      svg.querySelectorAll(".tm-selected").forEach(function (el) { el.classList.remove("tm-selected"); });
      var el = element(id);
      if (el) el.classList.add("tm-selected");
      if (details && byId[id]) show(details, byId[id]);
    }

    svg.querySelectorAll("g.node").forEach(function (g) {
      g.addEventListener("click", function (ev) { ev.stopPropagation(); select(g.id); });
    });

    var search = view.querySelector(".tm-search"), hitsEl = view.querySelector(".tm-hits");
    var hits = [], cursor = -1;
    if (search) {
      search.addEventListener("input", function () {
        var q = search.value.trim().toLowerCase();
        hits = [];
        cursor = -1;
        data.nodes.forEach(function (n) {
          var el = element(n.id);
          if (!el) return;
          var hay = (n.title + " " + n.sub + " " + JSON.stringify(n.details)).toLowerCase();
          var hit = q !== "" && hay.indexOf(q) >= 0;
          if (hit) hits.push(n.id);
          el.classList.toggle("tm-hit", hit);
          el.classList.toggle("tm-dim", q !== "" && !hit);
        });
        svg.querySelectorAll("g.edge").forEach(function (el) { el.classList.toggle("tm-dim", q !== ""); });
        if (hitsEl) hitsEl.textContent = q === "" ? "" : hits.length + (hits.length === 1 ? " match" : " matches") + (hits.length ? " (Enter: next)" : "");
      });
      search.addEventListener("keydown", function (ev) {
        if (ev.key !== "Enter" || !hits.length) return;
        ev.preventDefault();
        cursor = (cursor + 1) % hits.length;
        focus(hits[cursor]);
        select(hits[cursor]);
      });
    }
    view.querySelectorAll("[data-tm]").forEach(function (b) {
      b.addEventListener("click", function () {
        var what = b.getAttribute("data-tm");
        if (what === "zoom-in") panZoom.zoomIn();
        else if (what === "zoom-out") panZoom.zoomOut();
        else { panZoom.resize(); panZoom.fit(); panZoom.center(); }
      });
    });
    window.addEventListener("resize", function () { panZoom.resize(); });
    var start = data.nodes.filter(function (n) { return n.highlight; })[0];
    if (start) {
      // The whole graph stays in view when it is readable so; a big one opens at its main node.
      if (panZoom.getSizes().realZoom < 0.3) focus(start.id);
      select(start.id);
    }
    view.tmPanZoom = panZoom;
    view.setAttribute("data-tm-ready", "1");
    if (window.performance && performance.mark) performance.mark("tm-graph-ready");
  }

  function initAll() { document.querySelectorAll(".tm-graph-view").forEach(init); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
