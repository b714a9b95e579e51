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
  // In a list, a approves the selected row only (never the first one by default). Approving swaps
  // the row out, so the selection moves on to the next row at once: a, a, a works.
  function approveSelected() {
    var row = selected();
    if (!row) {
      if (!document.querySelector("[data-keyboard-list]")) click("[data-key=approve]");
      return;
    }
    var button = row.querySelector("[data-key=approve]");
    if (!button || button.disabled) return;
    button.click();
    var next = row.nextElementSibling || row.previousElementSibling;
    row.classList.remove("selected");
    if (next) next.classList.add("selected");
  }
  // A queue row's team picker holds only its placeholder until used: the teams come from the
  // page's one <template id="team-options">, copied in when the picker gets focus or a press.
  function fillPicker(event) {
    var picker = event.target;
    if (!picker || !picker.hasAttribute || !picker.hasAttribute("data-team-picker") || picker.options.length > 1) return;
    var teams = document.getElementById("team-options");
    if (teams) picker.appendChild(teams.content.cloneNode(true));
  }
  document.addEventListener("focusin", fillPicker);
  document.addEventListener("pointerdown", fillPicker, true);
  // The live refresh must not take the selection, nor a team picker that is open, away.
  var kept = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var live = event.detail.elt;
    if (!live || !live.hasAttribute || !live.hasAttribute("data-live")) return;
    var focus = document.activeElement;
    var picking = Array.prototype.some.call(live.querySelectorAll("select"), function (s) { return s.value; });
    if (picking || (focus && live.contains(focus) && focus.tagName === "SELECT")) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.elt.hasAttribute || !event.detail.elt.hasAttribute("data-live")) return;
    var row = selected();
    kept = row ? row.dataset.reference : null;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!kept || !event.detail.elt.hasAttribute || !event.detail.elt.hasAttribute("data-live")) return;
    rows().forEach(function (r) { if (r.dataset.reference === kept) r.classList.add("selected"); });
    kept = null;
  });
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    var sheet = document.getElementById("cheatsheet");
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter": var row = selected(); if (row && row.dataset.href) window.location = row.dataset.href; break;
      case "a": approveSelected(); break;
      case "e": var picker = (selected() || document).querySelector("[data-key=correct]"); if (picker) picker.focus(); break;
      case "r": var reply = document.querySelector("[data-key=reply]"); if (reply) { reply.focus(); event.preventDefault(); } break;
      case "/": var box = document.querySelector("[data-key=search]"); if (box) { box.focus(); event.preventDefault(); } break;
      case "?": if (sheet) sheet.hidden = !sheet.hidden; break;
      case "Escape": if (sheet) sheet.hidden = true; break;
      default: return;
    }
  });
})();
