// report.js: filters, sorting and expansion for report.html.
// It only reads data-* attributes and toggles `hidden`/`open`; it never builds
// HTML from data, so nothing from a log or a database can become markup or code.
(function () {
  "use strict";
  var list = document.getElementById("findings-list");
  if (!list) { return; }
  var rows = Array.prototype.slice.call(list.querySelectorAll("details.finding"));
  var byId = function (id) { return document.getElementById(id); };
  var controls = byId("controls");
  var f = {
    cls: byId("f-class"), severity: byId("f-severity"), database: byId("f-database"),
    user: byId("f-user"), allowed: byId("f-allowed"), text: byId("f-text"), sort: byId("f-sort")
  };
  var shown = byId("shown-count");
  var noMatch = byId("no-match");
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  controls.hidden = false;

  function apply() {
    var q = f.text.value.trim().toLowerCase();
    var visible = 0;
    rows.forEach(function (row, i) {
      var d = row.dataset;
      var ok = (!f.cls.value || d.class === f.cls.value) &&
        (!f.severity.value || d.severity === f.severity.value) &&
        (!f.database.value || d.database === f.database.value) &&
        (!f.user.value || d.user === f.user.value) &&
        (!f.allowed.value || d.allowed === f.allowed.value) &&
        (!q || texts[i].indexOf(q) !== -1);
      row.hidden = !ok;
      if (ok) { visible += 1; }
    });
    shown.textContent = visible === rows.length ? String(rows.length) : visible + " of " + rows.length + " shown";
    noMatch.hidden = visible !== 0;
  }

  function time(row) {
    return row.dataset.t === "" ? null : Number(row.dataset.t);
  }

  function compare(a, b) {
    var mode = f.sort.value;
    if (mode === "severity") {
      return Number(a.dataset.order) - Number(b.dataset.order);
    }
    var ta = time(a), tb = time(b);
    if (ta === null || tb === null) {
      if (ta !== tb) { return ta === null ? 1 : -1; }
    } else if (ta !== tb) {
      return mode === "time-desc" ? tb - ta : ta - tb;
    }
    return Number(a.dataset.order) - Number(b.dataset.order);
  }

  function sort() {
    rows.slice().sort(compare).forEach(function (row) { list.appendChild(row); });
  }

  function openFromHash() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var target = id ? byId(id) : null;
    if (target && target.classList.contains("finding")) {
      target.hidden = false;
      target.open = true;
      target.scrollIntoView({ block: "start" });
    }
  }

  ["cls", "severity", "database", "user", "allowed"].forEach(function (k) {
    f[k].addEventListener("change", apply);
  });
  f.text.addEventListener("input", apply);
  f.sort.addEventListener("change", sort);
  byId("expand-all").addEventListener("click", function () {
    rows.forEach(function (row) { if (!row.hidden) { row.open = true; } });
  });
  byId("collapse-all").addEventListener("click", function () {
    rows.forEach(function (row) { row.open = false; });
  });
  byId("reset").addEventListener("click", function () {
    ["cls", "severity", "database", "user", "allowed", "text"].forEach(function (k) { f[k].value = ""; });
    f.sort.value = "severity";
    sort();
    apply();
  });
  // Summary cards and class names filter the table, then the link scrolls to it.
  Array.prototype.forEach.call(document.querySelectorAll("[data-set-class], [data-set-severity]"), function (link) {
    link.addEventListener("click", function () {
      var cls = link.getAttribute("data-set-class");
      var sev = link.getAttribute("data-set-severity");
      if (cls !== null) { f.cls.value = cls; }
      if (sev !== null) { f.severity.value = sev; }
      apply();
    });
  });
  window.addEventListener("hashchange", openFromHash);
  apply();
  openFromHash();
}());
