// Staff workspace helpers (no inline scripts): print buttons, copy-to-clipboard, confirmations,
// and the consent form's representative-name field.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-print], [data-copy], [data-confirm]");
    if (!target) { return; }
    if (target.hasAttribute("data-print")) {
      window.print();
    } else if (target.hasAttribute("data-copy")) {
      var source = document.getElementById(target.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          target.textContent = target.getAttribute("data-copied") || "\u2713";
        });
      }
    } else if (target.hasAttribute("data-confirm")) {
      if (!window.confirm(target.getAttribute("data-confirm"))) { event.preventDefault(); }
    }
  });

  var representative = document.getElementById("id_representative_name");
  if (representative) {
    var field = representative.closest(".field");
    var sync = function () {
      var chosen = document.querySelector("input[name=given_by]:checked");
      var show = chosen && chosen.value === "representative";
      if (field) { field.hidden = !show && !representative.value; }
    };
    document.querySelectorAll("input[name=given_by]").forEach(function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  }
})();
