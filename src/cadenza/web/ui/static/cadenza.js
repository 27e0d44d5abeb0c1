// Cadenza's own behaviour on top of htmx: selections, the enroll dialog's panels.
// No inline scripts anywhere, so the Content-Security-Policy can forbid them.
(function () {
  "use strict";

  function recheck() {
    document.body.dispatchEvent(new Event("recheck"));
  }

  // --- select all / selection count (contacts index, enrollments) ---------------
  function selectionSetup() {
    var all = document.getElementById("select-all");
    if (!all) return;
    var boxes = function () { return document.querySelectorAll(".row-check"); };
    var update = function () {
      var chosen = Array.prototype.filter.call(boxes(), function (b) { return b.checked; });
      var count = document.getElementById("selected-count");
      if (count) count.textContent = chosen.length + " selected";
      var button = document.getElementById("enroll-selected");
      if (button) button.disabled = chosen.length === 0;
      all.checked = chosen.length > 0 && chosen.length === boxes().length;
      all.indeterminate = chosen.length > 0 && chosen.length < boxes().length;
    };
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    document.addEventListener("change", function (e) {
      if (e.target.classList && e.target.classList.contains("row-check")) update();
    });
    update();
  }

  // --- the enroll dialog ----------------------------------------------------------
  function showPanel(name) {
    document.querySelectorAll(".enroll .panel").forEach(function (p) {
      p.hidden = p.id !== "panel-" + name;
    });
    document.querySelectorAll(".panel-tab").forEach(function (t) {
      t.setAttribute("aria-pressed", t.dataset.panel === name ? "true" : "false");
    });
  }

  function setToken(token, value) {
    var holder = document.getElementById("token-values");
    var name = "token:" + token;
    var input = Array.prototype.find.call(holder.querySelectorAll("input"), function (i) {
      return i.name === name;
    });
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      holder.appendChild(input);
    }
    input.value = value;
    if (!value) holder.removeChild(input);
    recheck();
  }

  function enrollSetup() {
    var form = document.getElementById("enroll-form");
    if (!form) return;
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.addEventListener("change", function (e) {
      var t = e.target;
      if (t.classList.contains("token-input") || t.classList.contains("panel-search")) return;
      if (t.classList.contains("sequence-choice")) {
        // Steps differ per sequence: reload the dialog for it, keeping the contacts.
        var params = new URLSearchParams();
        form.querySelectorAll("input[name=contact]").forEach(function (c) { params.append("contact", c.value); });
        form.querySelectorAll("input[name=record_type], input[name=record_id]").forEach(function (r) { params.append(r.name, r.value); });
        params.append("sequence", t.value);
        window.location.assign("/enroll?" + params.toString());
        return;
      }
      if (t.name === "send") document.getElementById("send-later").hidden = t.value !== "later";
      recheck();
    });
    form.addEventListener("click", function (e) {
      var t = e.target.closest("button");
      if (!t) return;
      if (t.dataset.panel) showPanel(t.dataset.panel);
      if (t.dataset.remove) {
        var item = form.querySelector('.panel-contact[data-contact="' + t.dataset.remove + '"]');
        var panel = document.getElementById("panel-c" + t.dataset.remove);
        if (item) item.remove();
        if (panel) panel.remove();
        var left = form.querySelectorAll(".panel-contact").length;
        var count = document.getElementById("contact-count");
        if (count) count.textContent = "(" + left + ")";
        showPanel("all");
        recheck();
      }
      if (t.classList.contains("token-apply")) {
        var input = t.parentElement.querySelector(".token-input");
        if (input && input.value.trim()) setToken(t.dataset.token, input.value.trim());
        else if (input) input.focus();
      }
      if (t.classList.contains("token-clear")) setToken(t.dataset.token, "");
    });
    form.addEventListener("keydown", function (e) {
      // Enter in a token's value applies it, instead of submitting the dialog.
      if (e.key === "Enter" && e.target.classList.contains("token-input")) {
        e.preventDefault();
        var apply = e.target.parentElement.parentElement.querySelector(".token-apply");
        if (apply) apply.click();
      }
    });
    var search = document.getElementById("panel-search");
    if (search) {
      search.addEventListener("input", function () {
        var q = search.value.trim().toLowerCase();
        form.querySelectorAll(".panel-contact").forEach(function (li) {
          li.hidden = q !== "" && li.dataset.search.indexOf(q) === -1;
        });
      });
    }
  }

  // --- the sequence editor's token picker: inserts {{ token }} at the cursor ----------
  function tokenPickerSetup() {
    document.addEventListener("change", function (e) {
      var picker = e.target;
      if (!picker.classList || !picker.classList.contains("token-picker") || !picker.value) return;
      var area = document.getElementById(picker.dataset.target);
      var text = "{{ " + picker.value + " }}";
      picker.value = "";
      if (area.richInsert) return area.richInsert(text);  // rich-editor.js is on
      var at = area.selectionStart || area.value.length;
      area.value = area.value.slice(0, at) + text + area.value.slice(area.selectionEnd || at);
      area.focus();
      area.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  // --- the editor's "Insert signature" / "Insert meeting link" buttons ------------------
  function touchButtonsSetup() {
    document.addEventListener("click", function (e) {
      var button = e.target.closest && e.target.closest(".token-insert");
      if (!button) return;
      var area = document.getElementById(button.dataset.target);
      var text = button.dataset.insert;
      if (area.richInsertHtml) return area.richInsertHtml(text);  // rich-editor.js is on
      if (area.richInsert) return area.richInsert(text);
      var at = area.selectionStart || area.value.length;
      area.value = area.value.slice(0, at) + text + area.value.slice(area.selectionEnd || at);
      area.focus();
      area.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  // --- the sequence editor's A/B variant tabs: one panel at a time ------------------
  // Without this every variant shows, one under the other; all of them are in the form
  // either way, so a hidden tab is still saved.
  function showVariant(box, label) {
    box.querySelectorAll(".variant-panel").forEach(function (p) {
      p.hidden = p.dataset.label !== label;
    });
    box.querySelectorAll(".variant-tab").forEach(function (t) {
      t.setAttribute("aria-selected", t.dataset.label === label ? "true" : "false");
    });
  }

  function variantTabsSetup() {
    document.querySelectorAll(".variants").forEach(function (box) {
      var first = box.querySelector(".variant-tab");
      if (first) showVariant(box, first.dataset.label);
    });
    document.addEventListener("click", function (e) {
      var tab = e.target.closest && e.target.closest(".variant-tab");
      if (tab) showVariant(tab.closest(".variants"), tab.dataset.label);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    selectionSetup();
    enrollSetup();
    tokenPickerSetup();
    touchButtonsSetup();
    variantTabsSetup();
  });
})();
