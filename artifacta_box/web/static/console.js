// Artifacta Box console: small progressive enhancements. Every page works without it.
// Loaded from the console itself (the CSP allows no inline script and no eval).
"use strict";

(function () {
  var live = document.getElementById("live");

  function announce(text) {
    if (!live) return;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  // "Copy" buttons next to read-only fields (signed URLs, a new key).
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () {
        button.textContent = "Copied";
        announce("Copied to the clipboard");
        window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          announce("Select the text and copy it with Ctrl+C");
        });
      } else if (document.execCommand && document.execCommand("copy")) {
        done();
      } else {
        announce("Select the text and copy it with Ctrl+C");
      }
    });
  });

  // Read-only fields select their whole value on focus, ready to copy.
  document.querySelectorAll(".copy-field input[readonly]").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });

  // A page shown once (a new API key) answers a POST: make this history entry a plain GET,
  // so reloading shows the list instead of submitting the form again.
  var replace = document.body.getAttribute("data-replace-url");
  if (replace && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", replace);
  }
})();
