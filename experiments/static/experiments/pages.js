// Small comforts of the experiments pages: a "Copy" button for the tracking
// snippet, and a box that ticks every run of the table.
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    var text = document.getElementById(button.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = "Copied";
    });
  });
  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-select-all]")) return;
    document.querySelectorAll("input[name=run]").forEach(function (box) {
      box.checked = event.target.checked;
    });
  });
})();
