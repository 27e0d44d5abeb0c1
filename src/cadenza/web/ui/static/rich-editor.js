// A small rich-text editor for email bodies, layered over a <textarea data-rich>.
// Progressive enhancement: without scripts the textarea is the editor (raw HTML).
// With scripts the textarea is hidden and stays the field the form posts; the
// editable area writes its HTML back into it on every edit. The server sanitises the
// posted HTML with nh3 on save, so nothing here is trusted for what is stored; what is
// shown is cleaned here too (cleanFragment), since a stored body reaches the page as it is.
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

  // The server's allow-list (domain/templates.py), applied again here because a stored
  // body is HTML with Jinja tags left verbatim: `{{ "<img src=x onerror=...>" }}` is inert
  // for Jinja (values are escaped) but is markup to a browser. The body is parsed in an
  // inert document (no scripts run, nothing loads), cleaned, and only then moved in.
  var ALLOWED_TAGS = {
    P: 1, BR: 1, A: 1, B: 1, STRONG: 1, I: 1, EM: 1, U: 1, UL: 1, OL: 1, LI: 1,
    BLOCKQUOTE: 1, H1: 1, H2: 1, H3: 1, H4: 1, SPAN: 1, DIV: 1, IMG: 1, TABLE: 1,
    THEAD: 1, TBODY: 1, TR: 1, TD: 1, TH: 1, HR: 1, PRE: 1, CODE: 1,
  };
  var DROPPED_WITH_CONTENT = { SCRIPT: 1, STYLE: 1, TEMPLATE: 1, NOSCRIPT: 1, IFRAME: 1,
    OBJECT: 1, EMBED: 1, SVG: 1, MATH: 1, TITLE: 1, TEXTAREA: 1, SELECT: 1 };
  var ALLOWED_ATTRIBUTES = {
    A: ["href", "title"], IMG: ["src", "alt", "width", "height"],
    TD: ["colspan", "rowspan"], TH: ["colspan", "rowspan"],
  };
  var URL_ATTRIBUTES = { href: 1, src: 1 };
  var SCHEME = /^\s*([a-z][a-z0-9+.\-]*):/i;
  var ALLOWED_SCHEMES = { http: 1, https: 1, mailto: 1, tel: 1 };

  function safeUrl(value) {
    // control characters and whitespace inside a scheme ("java\tscript:") are ignored
    // by browsers, so they are removed before the scheme is read
    var match = SCHEME.exec(value.replace(/[\u0000-\u0020\u007f-\u009f]/g, ""));
    return !match || ALLOWED_SCHEMES[match[1].toLowerCase()] === 1;
  }

  function cleanNode(node) {
    var child = node.firstChild;
    while (child) {
      var next = child.nextSibling;
      if (child.nodeType === Node.ELEMENT_NODE) {
        var tag = child.nodeName.toUpperCase();
        if (DROPPED_WITH_CONTENT[tag] === 1) {
          child.remove();
        } else if (ALLOWED_TAGS[tag] !== 1) {
          cleanNode(child);
          next = child.firstChild || next;
          child.replaceWith.apply(child, Array.prototype.slice.call(child.childNodes));
        } else {
          var keep = ALLOWED_ATTRIBUTES[tag] || [];
          Array.prototype.slice.call(child.attributes).forEach(function (attr) {
            var name = attr.name.toLowerCase();
            if (keep.indexOf(name) < 0 || (URL_ATTRIBUTES[name] === 1 && !safeUrl(attr.value))) {
              child.removeAttribute(attr.name);
            }
          });
          cleanNode(child);
        }
      } else if (child.nodeType !== Node.TEXT_NODE) {
        child.remove();  // comments, processing instructions
      }
      child = next;
    }
  }

  // Jinja tags are text to the editor, never markup: each is swapped for a placeholder
  // before the HTML is parsed and put back, as text or as an attribute's value, after
  // cleaning. A split that ends a tag too early only leaves more to the cleaner.
  var JINJA = /\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}|\{#[\s\S]*?#\}/g;

  function restoreTags(root, pattern, tags) {
    function restore(value) {
      return value.replace(pattern, function (_, index) { return tags[+index]; });
    }
    var walker = root.ownerDocument.createTreeWalker(
      root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.nodeType === Node.TEXT_NODE) {
        node.nodeValue = restore(node.nodeValue);
        continue;
      }
      Array.prototype.slice.call(node.attributes).forEach(function (attr) {
        var value = restore(attr.value);
        if (URL_ATTRIBUTES[attr.name] === 1 && !safeUrl(value)) node.removeAttribute(attr.name);
        else node.setAttribute(attr.name, value);
      });
    }
  }

  function cleanFragment(html) {
    var marker = "cdzjinja";
    while (html.indexOf(marker) >= 0) marker += "q";
    var tags = [];
    var shielded = html.replace(JINJA, function (tag) {
      tags.push(tag);
      return marker + "x" + (tags.length - 1) + "x";
    });
    var doc = new DOMParser().parseFromString("<!doctype html><body>" + shielded, "text/html");
    cleanNode(doc.body);
    restoreTags(doc.body, new RegExp(marker + "x(\\d+)x", "g"), tags);
    var fragment = document.createDocumentFragment();
    while (doc.body.firstChild) fragment.appendChild(document.adoptNode(doc.body.firstChild));
    return fragment;
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
    area.replaceChildren(cleanFragment(textarea.value));  // never innerHTML: see above
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
    // Markup with Jinja tags (the "Insert meeting link" button's link), cleaned like a
    // stored body and put at the caret (or at the end when the caret is elsewhere).
    textarea.richInsertHtml = function (html) {
      restore();
      var sel = window.getSelection();
      var range = sel.rangeCount ? sel.getRangeAt(0) : null;
      var fragment = cleanFragment(html);
      if (range && area.contains(range.commonAncestorContainer)) {
        range.deleteContents();
        var last = fragment.lastChild;
        range.insertNode(fragment);
        if (last) range.setStartAfter(last);
        range.collapse(true);
        sel.removeAllRanges();
        sel.addRange(range);
      } else {
        area.appendChild(fragment);
      }
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
