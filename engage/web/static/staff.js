// engage staff pages: draws the pain-score chart from the data the page carries (no inline scripts: CSP).
(function () {
  function drawCharts(root) {
    root.querySelectorAll("canvas[data-scores]").forEach(function (canvas) {
      if (canvas.dataset.drawn || typeof Chart === "undefined") return;
      canvas.dataset.drawn = "1";
      var points = JSON.parse(canvas.dataset.scores);
      new Chart(canvas, {
        type: "line",
        data: {
          labels: points.map(function (p) { return p.when; }),
          datasets: [{ label: "Pain (0-10)", data: points.map(function (p) { return p.score; }),
                       borderColor: "#1565c0", backgroundColor: "#1565c0", tension: 0.2 }]
        },
        options: { animation: false, maintainAspectRatio: false,
                   scales: { y: { min: 0, max: 10, ticks: { stepSize: 1 } } } }
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
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawCharts(e.target); });
})();
