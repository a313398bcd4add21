// Behaviour that used to sit in inline event handlers (onclick=, onsubmit=, onchange=), which the
// Content-Security-Policy (proactive/csp.py) forbids. Delegated from document, so it also covers
// content htmx swaps in later.
//   <form data-confirm="Sure?">, <button data-confirm="Sure?">  ask before submitting
//   <select data-autosubmit>                                      submit its form on change
//   <input type="checkbox" data-select-all="CSS selector">        tick/untick every match
(function () {
  "use strict";

  document.addEventListener("submit", function (e) {
    const form = e.target;
    const submitter = e.submitter;
    const question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) e.preventDefault();
  });

  document.addEventListener("change", function (e) {
    const el = e.target;
    if (el.matches("select[data-autosubmit]") && el.form) el.form.submit();
    if (el.matches("input[type=checkbox][data-select-all]")) {
      document.querySelectorAll(el.dataset.selectAll).forEach(function (box) { box.checked = el.checked; });
    }
  });
})();
