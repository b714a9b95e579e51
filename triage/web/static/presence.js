// The ticket page's presence poll says "drafting" while the reply composer holds text.
// The composer marks its text field with data-key="reply" (or data-drafting). No inline script: CSP.
(function () {
  "use strict";
  function drafting() {
    var fields = document.querySelectorAll("[data-key=reply], [data-drafting]");
    for (var i = 0; i < fields.length; i++) {
      if ((fields[i].value || "").trim()) return true;
    }
    return false;
  }
  document.addEventListener("input", function () {
    var flag = document.getElementById("drafting");
    if (flag) flag.value = drafting() ? "1" : "";
  });
})();
