// Face enrollment at the desk: capture photos with the webcam (getUserMedia) and put them
// into the form's file input, so the normal upload (and its server-side quality gate) is used.
// Without a camera (or without permission) the file input alone still works.
(function () {
  "use strict";
  var box = document.getElementById("camera");
  var input = document.querySelector("input[type=file][name=photos]");
  if (!box || !input || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.DataTransfer) {
    return;
  }
  var video = document.getElementById("camera-video");
  var start = document.getElementById("camera-start");
  var shoot = document.getElementById("camera-shoot");
  var clear = document.getElementById("camera-clear");
  var status = document.getElementById("camera-status");
  var thumbs = document.getElementById("camera-thumbs");
  var max = parseInt(box.getAttribute("data-max"), 10) || 5;
  var taken = [];
  var stream = null;
  box.hidden = false;

  function refresh() {
    var transfer = new DataTransfer();
    taken.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
    thumbs.textContent = "";
    taken.forEach(function (file) {
      var img = document.createElement("img");
      img.alt = file.name;
      img.src = URL.createObjectURL(file);
      thumbs.appendChild(img);
    });
    status.textContent = taken.length + " / " + max;
    shoot.disabled = !stream || taken.length >= max;
    clear.disabled = taken.length === 0;
  }

  start.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        start.disabled = true;
        refresh();
      })
      .catch(function (error) {
        status.textContent = "Camera not available (" + error.name + "). Choose photo files below instead.";
      });
  });

  shoot.addEventListener("click", function () {
    if (!stream || !video.videoWidth) { return; }
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      if (!blob) { return; }
      taken.push(new File([blob], "camera-" + (taken.length + 1) + ".jpg", { type: "image/jpeg" }));
      refresh();
    }, "image/jpeg", 0.92);
  });

  clear.addEventListener("click", function () {
    taken = [];
    refresh();
  });

  input.addEventListener("change", function () {
    // A manual file choice replaces the camera photos.
    if (input.files.length && taken.length && input.files[0].name.indexOf("camera-") !== 0) {
      taken = [];
      thumbs.textContent = "";
      status.textContent = "";
    }
  });

  window.addEventListener("pagehide", function () {
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); }
  });
})();
