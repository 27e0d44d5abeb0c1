// The task queue's keyboard shortcuts (web/ui/templates/tasks/detail.html lists them).
// Every key only clicks, checks or focuses an element marked data-shortcut, so the page
// does the same with or without this file: plain forms underneath.
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function submitNext() {
    var next = document.getElementById("complete-next");
    if (next) next.click();
  }

  document.addEventListener("keydown", function (e) {
    if (typing(e.target)) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        submitNext();
      } else if (e.key === "Escape") {
        e.target.blur();
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var target = document.querySelector('[data-shortcut="' + e.key + '"]');
    if (!target) return;
    e.preventDefault();
    var tag = target.tagName.toLowerCase();
    if (tag === "input" && target.type === "radio") {
      target.checked = true;
      target.focus();
      target.blur();
    } else if (tag === "input" || tag === "textarea") {
      target.focus();
    } else {
      target.click();
    }
  });
})();
