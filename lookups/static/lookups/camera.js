// Face step: live camera with a framing guide and hints; the server's challenge (two actions,
// issue 11) shown large, then ~3.5 s of JPEG frames at 10 fps (<= 640 px) posted in one
// multipart form (field "frames", with the challenge nonce in field "challenge"). Falls back to the upload form when the
// camera cannot be used. No inline script: texts come from data-msg-* attributes.
(function () {
  "use strict";
  var section = document.getElementById("camera");
  var fallback = document.getElementById("fallback");
  if (!section || !fallback) { return; }

  var video = document.getElementById("camera-video");
  var viewfinder = document.getElementById("viewfinder");
  var guide = viewfinder.querySelector(".guide");
  var startButton = document.getElementById("camera-start");
  var captureButton = document.getElementById("camera-capture");
  var hint = document.getElementById("camera-hint");
  var prompt = document.getElementById("camera-prompt");
  var statusLine = document.getElementById("camera-status");
  var errorLine = document.getElementById("camera-error");
  var reason = document.getElementById("fallback-reason");
  var canvas = document.getElementById("camera-canvas");
  var form = document.getElementById("burst-form");
  var frameCount = parseInt(section.getAttribute("data-frames"), 10) || 35;
  var duration = parseInt(section.getAttribute("data-duration"), 10) || 3500;
  var maxSide = parseInt(section.getAttribute("data-max-side"), 10) || 640;
  var nonce = section.getAttribute("data-challenge") || "";
  var steps = Array.prototype.slice.call(section.querySelectorAll(".challenge-step"));
  var stream = null;
  var hintTimer = null;
  var busy = false;

  function msg(key) { return section.getAttribute("data-msg-" + key) || ""; }

  function showFallback(text) {
    stopCamera();
    section.hidden = true;
    fallback.hidden = false;
    if (text) {
      reason.textContent = text;
      reason.hidden = false;
    }
    var input = fallback.querySelector("input[type=file]");
    if (input) { input.focus(); }
  }

  function stopCamera() {
    if (hintTimer) { clearInterval(hintTimer); hintTimer = null; }
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
  }

  // Brightness and a rough "is a face filling the oval" measure from a small copy of the frame:
  // mean luma inside the oval, and the share of skin-coloured pixels there (a wide YCbCr
  // range that covers light and dark skin alike). Hints only: the server decides.
  var probe = document.createElement("canvas");
  probe.width = 48; probe.height = 64;
  function frameStats() {
    var w = probe.width, h = probe.height;
    var ctx = probe.getContext("2d", { willReadFrequently: true });
    var vw = video.videoWidth, vh = video.videoHeight;
    if (!vw || !vh) { return null; }
    // Same crop as the preview (object-fit: cover into a 3:4 box).
    var target = 3 / 4, sx = 0, sy = 0, sw = vw, sh = vh;
    if (vw / vh > target) { sw = vh * target; sx = (vw - sw) / 2; } else { sh = vw / target; sy = (vh - sh) / 2; }
    ctx.drawImage(video, sx, sy, sw, sh, 0, 0, w, h);
    var data = ctx.getImageData(0, 0, w, h).data;
    var lumaSum = 0, skin = 0, count = 0;
    var cx = w / 2, cy = h * 0.48, rx = w * 0.33, ry = h * 0.36;
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var dx = (x - cx) / rx, dy = (y - cy) / ry;
        if (dx * dx + dy * dy > 1) { continue; }
        var i = 4 * (y * w + x), r = data[i], g = data[i + 1], b = data[i + 2];
        var luma = 0.299 * r + 0.587 * g + 0.114 * b;
        var cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b;
        var cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b;
        lumaSum += luma;
        count++;
        if (cb >= 77 && cb <= 127 && cr >= 133 && cr <= 173 && luma > 30) { skin++; }
      }
    }
    return { brightness: count ? lumaSum / count : 0, skin: count ? skin / count : 0 };
  }

  function updateHint() {
    if (busy) { return; }
    var stats = frameStats();
    if (!stats) { return; }
    var text = msg("ok"), good = true;
    if (stats.brightness < 70) { text = msg("light"); good = false; }
    else if (stats.skin < 0.3) { text = msg("closer"); good = false; }
    hint.textContent = text;
    hint.className = "live-hint " + (good ? "good" : "bad");
    guide.classList.toggle("ok", good);
    section.setAttribute("data-brightness", String(Math.round(stats.brightness)));
    section.setAttribute("data-skin", stats.skin.toFixed(2));
  }

  function cameraError(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      showFallback(msg("denied"));
    } else if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
      showFallback(msg("nocamera"));
    } else {
      showFallback(msg("failed"));
    }
  }

  function startCamera() {
    startButton.disabled = true;
    statusLine.textContent = msg("wait");
    navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }
    }).then(function (mediaStream) {
      stream = mediaStream;
      video.srcObject = mediaStream;
      viewfinder.hidden = false;
      startButton.hidden = true;
      return video.play();
    }).then(function () {
      statusLine.textContent = "";
      captureButton.hidden = false;
      captureButton.disabled = false;
      captureButton.focus();
      hintTimer = setInterval(updateHint, 400);
      updateHint();
    }).catch(cameraError);
  }

  // One frame from the video, downscaled to at most maxSide px on its long side, as JPEG.
  // The canvas is copied when toBlob is called, so the next frame can be drawn at once.
  function grabFrame() {
    return new Promise(function (resolve, reject) {
      var vw = video.videoWidth, vh = video.videoHeight;
      var scale = Math.min(1, maxSide / Math.max(vw, vh, 1));
      canvas.width = Math.max(1, Math.round(vw * scale));
      canvas.height = Math.max(1, Math.round(vh * scale));
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) { if (blob) { resolve(blob); } else { reject(new Error("no frame")); } },
        "image/jpeg", 0.85);
    });
  }

  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // The server's challenge: show the step the person should do now, large, and mark it.
  function showStep(index) {
    steps.forEach(function (item, n) {
      item.classList.toggle("now", n === index);
      item.classList.toggle("done", n < index);
    });
    var item = steps[index];
    prompt.textContent = item ? item.querySelector(".challenge-text").textContent : msg("recording");
    prompt.classList.add("big");
  }

  // A retake gets the server's live challenge (a new one once the last was used).
  function setChallenge(challenge) {
    nonce = challenge.nonce || "";
    section.setAttribute("data-challenge", nonce);
    var field = form.querySelector("input[name=challenge]");
    if (field) { field.value = nonce; }
    (challenge.steps || []).forEach(function (step, n) {
      var item = steps[n];
      if (!item) { return; }
      item.setAttribute("data-action", step.action);
      item.querySelector(".challenge-icon").className = "challenge-icon icon-" + step.action;
      item.querySelector(".challenge-text").textContent = step.text;
    });
    section.setAttribute("data-actions", (challenge.steps || []).map(function (s) { return s.action; }).join(","));
  }

  function capture() {
    if (busy || !stream || !nonce) { return; }
    busy = true;
    captureButton.disabled = true;
    hint.textContent = "";
    errorLine.hidden = true;
    var pending = [];
    var interval = duration / frameCount;  // ~100 ms: 10 frames per second
    var perStep = Math.ceil(frameCount / Math.max(steps.length, 1));
    showStep(0);
    var chain = wait(800).then(function () {
      var started = performance.now();
      return new Promise(function (resolve) {
        function tick(index) {
          if (index >= frameCount) { resolve(); return; }
          if (index % perStep === 0) { showStep(Math.floor(index / perStep)); }
          statusLine.textContent = msg("recording");
          pending.push(grabFrame());
          var next = started + (index + 1) * interval;
          setTimeout(function () { tick(index + 1); }, Math.max(0, next - performance.now()));
        }
        tick(0);
      });
    }).then(function () { return Promise.all(pending); });
    var frames = null;
    chain = chain.then(function (blobs) { frames = blobs; });
    chain.then(function () {
      steps.forEach(function (item) { item.classList.remove("now", "done"); });
      prompt.classList.remove("big");
      prompt.textContent = "";
      statusLine.textContent = msg("sending");
      var body = new FormData(form);
      frames.forEach(function (blob, index) { body.append("frames", blob, "frame-" + (index + 1) + ".jpg"); });
      return fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      });
    }).then(function (response) {
      return response.json().catch(function () { return { ok: false, error: msg("neterror"), next: "" }; });
    }).then(function (answer) {
      if (answer.ok && answer.next) {
        stopCamera();
        window.location.assign(answer.next);
        return;
      }
      if (answer.next && answer.next.indexOf("/face/") === -1) {
        stopCamera();
        window.location.assign(answer.next);
        return;
      }
      statusLine.textContent = "";
      errorLine.textContent = answer.error || msg("neterror");
      errorLine.hidden = false;
      if (answer.challenge) { setChallenge(answer.challenge); }
      busy = false;
      captureButton.disabled = !nonce;
    }).catch(function () {
      prompt.textContent = "";
      statusLine.textContent = "";
      errorLine.textContent = msg("neterror");
      errorLine.hidden = false;
      busy = false;
      captureButton.disabled = false;
    });
  }

  // Decide what to show first.
  section.hidden = false;
  fallback.hidden = true;
  document.getElementById("show-fallback").addEventListener("click", function () { showFallback(""); });
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showFallback(msg("insecure"));
    return;
  }
  startButton.addEventListener("click", startCamera);
  captureButton.addEventListener("click", capture);
  window.addEventListener("pagehide", stopCamera);
})();
