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

  button.addEventListener("click", function () {
    button.disabled = true;
    out.textContent = "retraining… (reads the pinned snapshots by time travel and runs the recorded entry point)";
    fetch(button.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: "{}"
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
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
      head.textContent = (r.identical ? "identical" : "different") + " — retrain run " + r.run_id;
      out.appendChild(head);
      var table = document.createElement("table");
      table.className = "tm-table";
      [["data", r.data], ["code", r.code], ["environment", r.environment], ["metrics", r.metrics], ["artifact", r.artifact]].forEach(function (p) {
        var tr = document.createElement("tr");
        cell(tr, p[0]);
        cell(tr, p[1] && p[1].identical ? "identical" : "different", p[1] && p[1].identical ? "tm-good" : "tm-bad");
        var detail = p[1] ? (p[1].differences || p[1].values || p[1].sha256 || "") : "";
        cell(tr, typeof detail === "string" ? detail : JSON.stringify(detail));
        table.appendChild(tr);
      });
      out.appendChild(table);
    }).catch(function (e) {
      out.textContent = "retrain failed: " + e;
      out.className = "tm-bad";
    }).finally(function () { button.disabled = false; });
  });
})();
