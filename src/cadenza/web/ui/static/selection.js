// A selection that spans pages (the contacts index): the ticked ids are kept in
// sessionStorage, so paging, sorting or filtering keeps them; those not on this page
// travel as hidden inputs, so "Enroll in sequence" and "Add to list" take them all.
// "Select all N matching" asks the server for the filter's ids (up to the dialog's
// limit). Loaded after cadenza.js, whose own count it then corrects.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-persist]");
    if (!form) return;
    var key = "cadenza.selection." + form.dataset.persist;
    var max = parseInt(form.dataset.max || "500", 10);
    var stored = [];
    try { stored = JSON.parse(sessionStorage.getItem(key) || "[]"); } catch (e) { stored = []; }
    var chosen = new Set(stored.map(String));
    var boxes = function () { return form.querySelectorAll(".row-check"); };
    var elsewhere = document.getElementById("selection-elsewhere");
    var note = document.getElementById("selection-note");

    function refreshPageState() {
      // cadenza.js recounts the page (and "select all") on a row's change event.
      var box = form.querySelector(".row-check");
      if (box) box.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function save() {
      sessionStorage.setItem(key, JSON.stringify(Array.from(chosen)));
      var onPage = new Set(Array.prototype.map.call(boxes(), function (b) { return b.value; }));
      elsewhere.textContent = "";
      chosen.forEach(function (id) {
        if (onPage.has(id)) return;
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "contact";
        input.value = id;
        elsewhere.appendChild(input);
      });
      var off = elsewhere.children.length;
      var count = document.getElementById("selected-count");
      if (count) {
        count.textContent = chosen.size + " selected" +
          (off ? " (" + off + " on other pages)" : "");
      }
      var button = document.getElementById("enroll-selected");
      if (button) button.disabled = chosen.size === 0 || chosen.size > max;
      if (note && chosen.size > max) {
        note.textContent = "At most " + max + " contacts can go to the enroll dialog at once.";
      }
      var clear = document.getElementById("clear-selection");
      if (clear) clear.hidden = chosen.size === 0;
    }

    boxes().forEach(function (b) { if (chosen.has(b.value)) b.checked = true; });
    // On the document, registered after cadenza.js's own listener: this count is the
    // last word (a listener on the form would run first and be overwritten).
    document.addEventListener("change", function (e) {
      var target = e.target;
      if (!form.contains(target)) return;
      if (target.classList && target.classList.contains("row-check")) {
        if (target.checked) chosen.add(target.value); else chosen.delete(target.value);
      } else if (target.id === "select-all") {
        boxes().forEach(function (b) {
          if (b.checked) chosen.add(b.value); else chosen.delete(b.value);
        });
      } else {
        return;
      }
      save();
    });

    var matching = document.getElementById("select-matching");
    if (matching) {
      matching.addEventListener("click", function () {
        fetch(matching.dataset.url, { headers: { Accept: "application/json" } })
          .then(function (response) {
            if (!response.ok) throw new Error("HTTP " + response.status);
            return response.json();
          })
          .then(function (data) {
            data.ids.forEach(function (id) { chosen.add(String(id)); });
            boxes().forEach(function (b) { if (chosen.has(b.value)) b.checked = true; });
            if (note) {
              note.textContent = data.capped
                ? "Selected the first " + data.ids.length + " of " + data.total + " matching."
                : "All " + data.total + " matching contacts selected.";
            }
            refreshPageState();
            save();
          })
          .catch(function (error) {
            if (note) note.textContent = "Could not select the matching contacts (" + error.message + ").";
          });
      });
    }

    var clear = document.getElementById("clear-selection");
    if (clear) {
      clear.addEventListener("click", function () {
        chosen.clear();
        boxes().forEach(function (b) { b.checked = false; });
        if (note) note.textContent = "";
        refreshPageState();
        save();
      });
    }

    // The selection goes with "Enroll in sequence"; a new one starts afterwards.
    form.addEventListener("submit", function () { sessionStorage.removeItem(key); });

    refreshPageState();
    save();
  });
})();
