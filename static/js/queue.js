// Review queue (templates/campaigns/queue.html): keyboard moves, and the 15 s refresh of
// #queue-list pauses while boxes are ticked or the tab is hidden (cancelling htmx's request
// here instead of an hx-trigger filter, which htmx would have to eval under our CSP).
(function () {
  "use strict";
  let row = -1;
  function rows() { return Array.from(document.querySelectorAll("#queue-list tbody tr")); }
  function mark() { rows().forEach((r, i) => r.style.outline = i === row ? "2px solid #2f5bea" : ""); }
  document.addEventListener("keydown", function (e) {
    if (e.target.closest("input, textarea, select") || e.metaKey || e.ctrlKey || e.altKey) return;
    const all = rows();
    if (e.key === "n" && document.getElementById("claim-next")) { document.getElementById("claim-next-form").submit(); }
    else if (e.key === "j") { row = Math.min(row + 1, all.length - 1); mark(); }
    else if (e.key === "k") { row = Math.max(row - 1, 0); mark(); }
    else if (e.key === "x" && all[row]) { const b = all[row].querySelector("input.pick"); if (b) b.checked = !b.checked; }
    else if (e.key === "Enter" && all[row]) { all[row].querySelector(".title a").click(); }
  });
  document.body.addEventListener("htmx:afterSwap", mark);
  document.body.addEventListener("htmx:beforeRequest", function (e) {
    if (e.detail.elt.id !== "queue-list") return;
    if (document.hidden || document.querySelector("#queue-list input.pick:checked")) e.preventDefault();
  });
})();
