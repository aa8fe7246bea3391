// Polls the lookup's status endpoint until the face check has a verdict, then moves on.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var text = document.getElementById("progress-text");
  var delay = 1000;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data.done) {
          window.location.assign(data.next);
          return;
        }
        text.textContent = data.label;
        setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 8000);
        setTimeout(poll, delay);
      });
  }
  setTimeout(poll, 500);
})();
