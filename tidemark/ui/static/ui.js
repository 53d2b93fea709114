/* The retrain action on a model version's page: POST (JSON) to the plugin's API, show the report. */
(function () {
  "use strict";
  var button = document.getElementById("tm-retrain-button");
  var out = document.getElementById("tm-retrain-report");
  if (!button || !out) return;

  function cell(row, value, cls) {
    var td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  // Snapshot ids are 64-bit: a JS number rounds them past 2^53 (7782715271006857477 became
  // 7782715271006857000 on the page). Such integers keep their digits, as strings, from the source text.
  function parseExact(text) {
    return JSON.parse(text, function (key, value, context) {
      return typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source) ? context.source : value;
    });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    out.textContent = "retraining… (reads the pinned snapshots by time travel and runs the recorded entry point)";
    fetch(button.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: "{}"
    }).then(function (r) {
      return r.text().then(function (text) { return { ok: r.ok, body: parseExact(text) }; });
    }).then(function (res) {
      out.innerHTML = "";
      if (!res.ok) {
        out.appendChild(document.createTextNode((res.body.error && res.body.error.message) || "retrain failed"));
        out.className = "tm-bad";
        return;
      }
      var r = res.body;
      var head = document.createElement("p");
      head.className = r.identical ? "tm-good" : "tm-bad";
      head.id = "tm-retrain-verdict";
      var causes = (r.causes || []).map(function (c) { return c.cause; }).join(", ");
      head.textContent = (r.identical ? "identical" : "different") + " — " + r.verdict +
        (causes ? " (causes, most likely first: " + causes + ")" : "") + " — retrain run " + r.run_id;
      out.appendChild(head);
      var table = document.createElement("table");
      table.className = "tm-table";
      var data = (r.data.inputs || []).map(function (i) {
        return i.table + " @ " + i.snapshot_id + ": " + i.rows + " rows" + (i.identical ? "" : " (recorded " + i.recorded_rows + ")");
      }).join("; ");
      var metrics = Object.keys(r.metrics.values || {}).map(function (k) {
        var m = r.metrics.values[k];
        return k + " " + m.old + " → " + m.new + " (Δ " + m.delta + ")";
      }).join("; ");
      var artifact = "sha256 " + r.artifact.new_sha256 + (r.artifact.identical ? "" : " (recorded " + r.artifact.old_sha256 + ")");
      [["data", r.data, data], ["code", r.code, (r.code.differences || []).join("; ") || r.entry_point],
       ["packages", {identical: r.environment.imported_identical},
        (r.environment.packages || []).filter(function (c) { return c.imported; }).map(function (c) {
          return c.name + " " + c.recorded + " → " + c.current;
        }).join("; ") || "the packages the job imports are as recorded"],
       ["platform", r.platform, (r.platform.differences || []).join("; ") || "same CPU, BLAS and OS"],
       ["metrics", r.metrics, metrics], ["artifact", r.artifact, artifact]].forEach(function (p) {
        var tr = document.createElement("tr");
        cell(tr, p[0]);
        cell(tr, p[1].identical ? "identical" : "different", p[1].identical ? "tm-good" : "tm-bad");
        cell(tr, typeof p[2] === "string" ? p[2] : JSON.stringify(p[2]));
        table.appendChild(tr);
      });
      out.appendChild(table);
    }).catch(function (e) {
      out.textContent = "retrain failed: " + e;
      out.className = "tm-bad";
    }).finally(function () { button.disabled = false; });
  });
})();
