// Polls the lookup's status until the face check has a verdict, then moves on by itself.
// After data-timeout-ms without a verdict it says so and offers a way out (keeps polling).
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var timeout = parseInt(box.getAttribute("data-timeout-ms"), 10) || 30000;
  var text = document.getElementById("progress-text");
  var slow = document.getElementById("progress-slow");
  var started = Date.now();
  var delay = 1000;

  function checkSlow() {
    if (slow && slow.hidden && Date.now() - started >= timeout) { slow.hidden = false; }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data.done) {
          if (data.message) { text.textContent = data.message; }
          window.location.assign(data.next);
          return;
        }
        delay = 1000;
        text.textContent = box.getAttribute("data-msg-checking") || data.label;
        checkSlow();
        setTimeout(poll, delay);
      })
      .catch(function () {
        text.textContent = box.getAttribute("data-msg-offline");
        checkSlow();
        delay = Math.min(delay * 2, 8000);
        setTimeout(poll, delay);
      });
  }
  setTimeout(checkSlow, timeout + 50);
  setTimeout(poll, 500);
})();
