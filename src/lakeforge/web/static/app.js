// lakeforge serve: a little progressive enhancement. Every page works without it.
"use strict";
(function () {
  // Filters: a site or model applies at once (dates with the Apply button); the form keeps them in the URL.
  document.querySelectorAll("form.filters select").forEach(function (el) {
    el.addEventListener("change", function () { el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit(); });
  });
  // Machine picker: go to the chosen machine.
  var picker = document.querySelector("[data-testid=machine-select]");
  if (picker) {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }
  // SQL explorer: Ctrl/Cmd+Enter runs; a table name inserts itself at the cursor.
  var sql = document.querySelector("[data-testid=sql-input]");
  if (sql) {
    sql.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        sql.form.submit();
      }
    });
    document.querySelectorAll("[data-testid=table-name]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var name = link.getAttribute("data-table");
        if (!sql.value.trim()) {
          sql.value = "SELECT * FROM " + name + " LIMIT 100";
        } else {
          var at = sql.selectionStart || sql.value.length;
          sql.value = sql.value.slice(0, at) + name + sql.value.slice(sql.selectionEnd || at);
        }
        sql.focus();
      });
    });
  }
  // Tables: click a header to sort by it (numbers as numbers).
  function key(cell) {
    var text = cell.textContent.trim();
    var number = parseFloat(text.replace(/[,$%\s]|[a-zA-Z]+$/g, ""));
    return text === "—" ? null : (/^[-$]?[\d,.]+/.test(text) && !isNaN(number) ? number : text.toLowerCase());
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, index) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var descending = th.getAttribute("data-sorted") === "asc";
        rows.sort(function (a, b) {
          var x = key(a.cells[index]), y = key(b.cells[index]);
          if (x === y) { return 0; }
          if (x === null) { return 1; }
          if (y === null) { return -1; }
          return (x < y ? -1 : 1) * (descending ? -1 : 1);
        });
        table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("data-sorted"); });
        th.setAttribute("data-sorted", descending ? "desc" : "asc");
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
