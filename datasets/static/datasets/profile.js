// Draw the profile's plotly figures: their specs sit in <script type="application/json">
// next to each chart, built by the server; drawn on load and after each htmx swap.
(function () {
  function draw() {
    if (typeof window.Plotly === "undefined") return;
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var spec = JSON.parse(document.getElementById(el.dataset.figure).textContent);
      window.Plotly.newPlot(el, spec.data, spec.layout, { displayModeBar: false, responsive: true });
      el.dataset.drawn = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
