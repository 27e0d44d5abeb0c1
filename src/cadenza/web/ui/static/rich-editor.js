// A small rich-text editor for email bodies, layered over a <textarea data-rich>.
// Progressive enhancement: without scripts the textarea is the editor (raw HTML).
// With scripts the textarea is hidden and stays the field the form posts; the
// editable area writes its HTML back into it on every edit. The server sanitises the
// posted HTML with nh3 on save, so nothing here is trusted for safety.
(function () {
  "use strict";

  var BUTTONS = [
    ["bold", "B", "Bold"],
    ["italic", "I", "Italic"],
    ["link", "Link", "Link"],
    ["insertUnorderedList", "• List", "Bulleted list"],
    ["paragraph", "¶", "Paragraph"],
  ];
  // Chromium's editing commands write <b>/<i>; emails keep the semantic tags.
  var RENAME = { B: "strong", I: "em" };

  function serialise(area) {
    var copy = area.cloneNode(true);
    Object.keys(RENAME).forEach(function (tag) {
      copy.querySelectorAll(tag).forEach(function (old) {
        var el = document.createElement(RENAME[tag]);
        while (old.firstChild) el.appendChild(old.firstChild);
        old.replaceWith(el);
      });
    });
    // Editing keeps typed spaces as no-break spaces; an email wants ordinary ones.
    var walker = document.createTreeWalker(copy, NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      node.nodeValue = node.nodeValue.replace(/\u00a0/g, " ");
    }
    // An emptied editor leaves a <br> or <p><br></p> behind: that is an empty body.
    if (!copy.textContent.trim() && !copy.querySelector("img")) return "";
    return copy.innerHTML;
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function enhance(textarea) {
    if (textarea.dataset.richReady) return;
    textarea.dataset.richReady = "1";
    var wrap = document.createElement("div");
    wrap.className = "rich-editor";
    var bar = document.createElement("div");
    bar.className = "rich-toolbar";
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", "Formatting");
    var area = document.createElement("div");
    area.className = "rich-area";
    area.contentEditable = "true";
    area.setAttribute("role", "textbox");
    area.setAttribute("aria-multiline", "true");
    area.setAttribute("aria-label", textarea.getAttribute("aria-label") || "Body");
    if (textarea.id) area.id = textarea.id + "-rich";
    area.innerHTML = textarea.value;  // shown in the page's own CSP: no script runs
    var saved = null;  // the caret, kept while a toolbar button or picker has focus

    var announce = debounce(function () {
      textarea.dispatchEvent(new Event("change", { bubbles: true }));
    }, 400);
    function sync() {
      textarea.value = serialise(area);
      announce();
    }
    function remember() {
      var sel = window.getSelection();
      if (sel.rangeCount && area.contains(sel.getRangeAt(0).commonAncestorContainer)) {
        saved = sel.getRangeAt(0).cloneRange();
      }
    }
    function restore() {
      area.focus();
      if (saved) {
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(saved);
      }
    }

    BUTTONS.forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = b[1];
      button.title = b[2];
      button.setAttribute("aria-label", b[2]);
      button.dataset.command = b[0];
      bar.appendChild(button);
    });
    bar.addEventListener("mousedown", function (e) { e.preventDefault(); });  // keep the caret
    bar.addEventListener("click", function (e) {
      var button = e.target.closest("button");
      if (!button) return;
      restore();
      var command = button.dataset.command;
      if (command === "link") {
        var url = window.prompt("Link address (https://…)", "https://");
        if (!url || url === "https://") return;
        document.execCommand("createLink", false, url);
      } else if (command === "paragraph") {
        document.execCommand("formatBlock", false, "p");
      } else {
        document.execCommand(command, false, null);
      }
      remember();
      sync();
    });
    area.addEventListener("input", sync);
    area.addEventListener("keyup", remember);
    area.addEventListener("mouseup", remember);
    area.addEventListener("blur", remember);
    // The editor's own keyup must not reach htmx's keyup trigger on the form:
    // the debounced change above already refreshes the preview.
    area.addEventListener("keyup", function (e) { e.stopPropagation(); });

    textarea.richInsert = function (text) {
      restore();
      document.execCommand("insertText", false, text);
      remember();
      sync();
    };
    wrap.appendChild(bar);
    wrap.appendChild(area);
    // After the textarea's label, not inside it: a click in a label would send the
    // focus to the (hidden) textarea instead of placing the caret.
    (textarea.closest("label") || textarea).after(wrap);
    textarea.hidden = true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.execCommand("defaultParagraphSeparator", false, "p");
    document.querySelectorAll("textarea[data-rich]").forEach(enhance);
  });
})();
