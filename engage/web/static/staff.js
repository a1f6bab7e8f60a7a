// engage staff pages: draws the pain-score chart from the data the page carries (no inline scripts: CSP).
(function () {
  function drawCharts(root) {
    root.querySelectorAll("canvas[data-scores]").forEach(function (canvas) {
      if (canvas.dataset.drawn || typeof Chart === "undefined") return;
      canvas.dataset.drawn = "1";
      // A real time axis: x is milliseconds since the epoch, so gaps between answers show as gaps;
      // the plan's sessions are marked along the bottom.
      var points = JSON.parse(canvas.dataset.scores);
      var sessions = JSON.parse(canvas.dataset.sessions || "[]");
      var day = function (ms) { return new Date(ms).toLocaleDateString("en-US", { month: "short", day: "numeric" }); };
      new Chart(canvas, {
        type: "line",
        data: {
          datasets: [
            { label: "Pain (0-10)", data: points, borderColor: "#1565c0", backgroundColor: "#1565c0", tension: 0.2 },
            { type: "scatter", label: "Sessions", data: sessions.map(function (s) { return { x: s.x, y: 0 }; }),
              pointStyle: "triangle", pointRadius: 7, borderColor: "#2e7d32", backgroundColor: "#2e7d32" }
          ]
        },
        options: { animation: false, maintainAspectRatio: false, parsing: true,
                   plugins: { tooltip: { callbacks: { title: function (items) { return day(items[0].parsed.x); } } } },
                   scales: { x: { type: "linear", ticks: { callback: function (v) { return day(v); }, maxTicksLimit: 8 } },
                             y: { min: 0, max: 10, ticks: { stepSize: 1 } } } }
      });
    });
  }
  // A file over the upload limit is refused before it is sent (the server refuses it too, beside the field).
  function checkFileSize(input) {
    var hint = document.getElementById(input.getAttribute("aria-describedby"));
    if (!hint) return;
    if (hint.dataset.hint === undefined) hint.dataset.hint = hint.textContent;
    var file = input.files && input.files[0];
    var tooBig = !!file && file.size > Number(input.dataset.maxBytes);
    input.setCustomValidity(tooBig ? input.dataset.tooBig : "");
    if (tooBig) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    hint.textContent = tooBig ? input.dataset.tooBig : hint.dataset.hint;
    hint.classList.toggle("field-error", tooBig);
  }
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("input[type=file][data-max-bytes]")) checkFileSize(e.target);
  });
  // A link to a section folded in a <details> (#timeline, a redirect back to #replies) opens it.
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (!target) return;
    var folded = target.matches("details") ? target : target.querySelector(":scope > details");
    if (folded) folded.open = true;
    for (var up = target.parentElement; up; up = up.parentElement) if (up.tagName === "DETAILS") up.open = true;
    target.scrollIntoView();
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", function () { openTarget(); drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawCharts(e.target); });
})();
