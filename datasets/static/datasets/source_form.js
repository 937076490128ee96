// The register-source form: switching the kind shows that kind's connection
// fields and hides (and disables, so they are not sent) the others, in place.
(function () {
  function sync(form) {
    var kind = form.querySelector("select[name=kind]").value;
    form.querySelectorAll("fieldset[data-kind]").forEach(function (fieldset) {
      var chosen = fieldset.dataset.kind === kind;
      fieldset.hidden = !chosen;
      fieldset.disabled = !chosen;
    });
    // The chooser's links (the way to switch without scripts) follow too.
    document.querySelectorAll(".kind-chooser a[href^='?kind=']").forEach(function (link) {
      var chosen = link.getAttribute("href") === "?kind=" + kind;
      link.classList.toggle("primary", chosen);
      if (chosen) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.source-form").forEach(function (form) {
      var select = form.querySelector("select[name=kind]");
      if (!select) return;
      select.addEventListener("change", function () { sync(form); });
      sync(form);
    });
  });
})();
