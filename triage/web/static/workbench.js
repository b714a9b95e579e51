// Keyboard shortcuts for the workbench. No inline script anywhere: the pages' CSP forbids it.
(function () {
  "use strict";
  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("[data-keyboard-list] tbody tr")); }
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.findIndex(function (r) { return r.classList.contains("selected"); });
    if (index >= 0) all[index].classList.remove("selected");
    index = Math.max(0, Math.min(all.length - 1, index + step));
    all[index].classList.add("selected");
    all[index].scrollIntoView({ block: "nearest" });
  }
  function selected() { return document.querySelector("[data-keyboard-list] tbody tr.selected"); }
  function click(selector) {
    var scope = selected() || document;
    var target = scope.querySelector(selector) || document.querySelector(selector);
    if (target) { target.click(); return true; }
    return false;
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    var sheet = document.getElementById("cheatsheet");
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter": var row = selected(); if (row && row.dataset.href) window.location = row.dataset.href; break;
      case "a": click("[data-key=approve]"); break;
      case "e": var picker = (selected() || document).querySelector("[data-key=correct]"); if (picker) picker.focus(); break;
      case "r": var reply = document.querySelector("[data-key=reply]"); if (reply) { reply.focus(); event.preventDefault(); } break;
      case "?": if (sheet) sheet.hidden = !sheet.hidden; break;
      case "Escape": if (sheet) sheet.hidden = true; break;
      default: return;
    }
  });
})();
