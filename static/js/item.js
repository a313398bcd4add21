// Review item (templates/campaigns/item.html): Escape goes back to the queue (data-queue-url on
// this script's tag), e / r focus the title / the reject reason.
(function () {
  "use strict";
  const queueUrl = document.currentScript.dataset.queueUrl;
  document.addEventListener("keydown", function (e) {
    if (e.metaKey || e.ctrlKey || e.altKey) return;
    if (e.key === "Escape") { window.location = queueUrl; return; }
    if (e.target.closest("input, textarea, select")) return;
    const focus = {e: "title", r: "reason"}[e.key];
    if (focus && document.getElementById(focus)) { e.preventDefault(); document.getElementById(focus).focus(); }
  });
})();
