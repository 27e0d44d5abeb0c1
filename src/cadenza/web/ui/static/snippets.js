// Snippets in the editors: a "Snippet" menu on each rich editor's toolbar, and `#name`
// typed in a body (rich editor) or a plain text field marked data-snippets, offering the
// snippets whose name starts so; Enter, Tab or a click inserts the chosen one's text in
// place of the `#name`. The text is copied where it lands (docs/content.md). The list
// comes from the page (<script type="application/json" id="snippet-data">), never run.
(function () {
  "use strict";

  var SHORTCUT = /#([a-z0-9_-]*)$/;
  var snippets = [];
  var box = null;      // the suggestion list, one for the page
  var state = null;    // {field, typed, matches, active}

  function matching(prefix) {
    var seen = {};
    return snippets.filter(function (s) {
      if (s.name.indexOf(prefix) !== 0 || seen[s.name]) return false;
      seen[s.name] = true;  // one's own first: a colleague's of the same name is hidden
      return true;
    }).slice(0, 8);
  }

  function textBeforeCaret(field) {
    if (field.tagName === "TEXTAREA" || field.tagName === "INPUT") {
      return field.value.slice(0, field.selectionStart);
    }
    var sel = window.getSelection();
    if (!sel.rangeCount || !sel.isCollapsed) return "";
    var range = sel.getRangeAt(0);
    if (range.startContainer.nodeType !== Node.TEXT_NODE) return "";
    return range.startContainer.nodeValue.slice(0, range.startOffset);
  }

  function insert(field, typedLength, text) {
    if (field.tagName === "TEXTAREA" || field.tagName === "INPUT") {
      var end = field.selectionStart;
      var start = end - typedLength;
      field.value = field.value.slice(0, start) + text + field.value.slice(end);
      field.selectionStart = field.selectionEnd = start + text.length;
      field.focus();
      field.dispatchEvent(new Event("change", { bubbles: true }));
      return;
    }
    var sel = window.getSelection();
    for (var i = 0; i < typedLength; i++) sel.modify("extend", "backward", "character");
    document.execCommand("insertText", false, text);  // fires the editor's own sync
  }

  function close() {
    if (box) box.hidden = true;
    state = null;
  }

  function show(field, typed, matches) {
    if (!box) {
      box = document.createElement("ul");
      box.className = "snippet-suggest";
      box.id = "snippet-suggest";
      box.setAttribute("role", "listbox");
      box.setAttribute("aria-label", "Snippets");
      box.addEventListener("mousedown", function (e) {
        e.preventDefault();  // keep the caret in the field
        var item = e.target.closest("li");
        if (item && state) choose(+item.dataset.index);
      });
      document.body.appendChild(box);
    }
    state = { field: field, typed: typed, matches: matches, active: 0 };
    box.replaceChildren();
    matches.forEach(function (s, index) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.dataset.index = String(index);
      li.dataset.name = s.name;
      var name = document.createElement("strong");
      name.textContent = "#" + s.name;
      li.appendChild(name);
      li.appendChild(document.createTextNode(" " + s.body.slice(0, 60)));
      box.appendChild(li);
    });
    highlight();
    var rect = field.getBoundingClientRect();
    box.style.left = window.scrollX + rect.left + "px";
    box.style.top = window.scrollY + rect.bottom + "px";
    box.hidden = false;
  }

  function highlight() {
    Array.prototype.forEach.call(box.children, function (li, index) {
      li.setAttribute("aria-selected", index === state.active ? "true" : "false");
    });
  }

  function choose(index) {
    var s = state.matches[index];
    var field = state.field;
    var typed = state.typed;
    close();
    insert(field, typed.length + 1, s.body);
  }

  function onInput(e) {
    var field = e.target.closest("[data-snippets], .rich-area");
    if (!field) return;
    var found = SHORTCUT.exec(textBeforeCaret(field));
    var matches = found ? matching(found[1]) : [];
    if (matches.length) show(field, found[1], matches);
    else close();
  }

  function onKeydown(e) {
    if (!state || box.hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      var n = state.matches.length;
      state.active = (state.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      highlight();
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      e.stopPropagation();
      choose(state.active);
    } else if (e.key === "Escape") {
      close();
    }
  }

  function addMenus() {
    document.querySelectorAll("textarea[data-rich]").forEach(function (textarea) {
      var bar = textarea.closest("label")
        ? textarea.closest("label").nextElementSibling
        : textarea.nextElementSibling;
      bar = bar && bar.querySelector(".rich-toolbar");
      if (!bar || bar.querySelector(".snippet-menu")) return;
      var menu = document.createElement("select");
      menu.className = "snippet-menu";
      menu.setAttribute("aria-label", "Insert a snippet");
      var first = document.createElement("option");
      first.value = "";
      first.textContent = "Snippet…";
      menu.appendChild(first);
      snippets.forEach(function (s, index) {
        var option = document.createElement("option");
        option.value = String(index);
        option.textContent = "#" + s.name;
        menu.appendChild(option);
      });
      menu.addEventListener("change", function () {
        if (menu.value === "") return;
        var s = snippets[+menu.value];
        menu.value = "";
        if (textarea.richInsert) textarea.richInsert(s.body);
      });
      // Beside the toolbar's buttons, not among them: the toolbar swallows mousedown
      // (to keep the caret), which would stop a menu from opening.
      bar.after(menu);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("snippet-data");
    if (!data) return;
    try { snippets = JSON.parse(data.textContent) || []; } catch (err) { snippets = []; }
    if (!snippets.length) return;
    // The rich editors enhance their textareas first (rich-editor.js loads earlier).
    document.querySelectorAll("textarea[data-rich]").forEach(function (t) {
      var area = t.id && document.getElementById(t.id + "-rich");
      if (area) area.dataset.snippets = "1";
    });
    addMenus();
    document.addEventListener("input", onInput, true);
    document.addEventListener("keydown", onKeydown, true);
    document.addEventListener("focusout", close);  // a click in the list keeps the focus
  });
})();
