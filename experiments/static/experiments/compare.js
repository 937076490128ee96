// The comparison page: figures built by the server sit in <script type="application/json">
// (parallel coordinates, scatter); each metric chart is fetched from its own URL,
// downsampled on the server, and drawn when it arrives.
(function () {
  var config = { displayModeBar: false, responsive: true };

  function drawEmbedded() {
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var spec = JSON.parse(document.getElementById(el.dataset.figure).textContent);
      window.Plotly.newPlot(el, spec.data, spec.layout, config);
      el.dataset.drawn = "1";
    });
  }

  function drawCharts() {
    document.querySelectorAll("[data-chart-url]").forEach(function (el) {
      fetch(el.dataset.chartUrl, { credentials: "same-origin" })
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (result) {
          if (!result.ok) {
            el.textContent = result.body.error || "This chart could not be drawn.";
            el.classList.add("error");
            return;
          }
          el.textContent = "";
          window.Plotly.newPlot(el, result.body.data, result.body.layout, config);
          el.dataset.drawn = "1";
        })
        .catch(function () {
          el.textContent = "This chart could not be loaded.";
          el.classList.add("error");
        });
    });
  }

  function showSmoothing() {
    document.querySelectorAll("[data-smoothing]").forEach(function (input) {
      var out = input.parentElement.querySelector("output");
      input.addEventListener("input", function () { if (out) out.textContent = input.value; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof window.Plotly === "undefined") return;
    drawEmbedded();
    drawCharts();
    showSmoothing();
  });
})();
