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
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawCharts(e.target); });
})();
