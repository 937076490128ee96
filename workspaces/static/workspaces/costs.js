// Draw the cost page's figures: each <div data-figure="ID"> gets the Plotly
// figure (built by workspaces.selectors.cost_figures) in <script id="ID">.
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-figure]")) {
    const source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) continue;
    const figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, figure.data, figure.layout, { responsive: true, displaylogo: false });
  }
});
