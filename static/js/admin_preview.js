// "Preview matches" next to the playbook trigger in the Django admin (campaigns/admin.py,
// PlaybookAdmin.preview_view): posts the UNSAVED trigger and tenant of the form and shows how
// many customers match now, or the validation error naming the bad part. Server text is only
// ever written with textContent.
(function () {
  "use strict";

  function setup() {
    const trigger = document.querySelector("textarea[data-preview-url], input[data-preview-url]");
    if (!trigger) return;
    const form = trigger.form;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.id = "preview-matches";
    button.textContent = "Preview matches";
    const output = document.createElement("div");
    output.id = "preview-matches-result";
    output.setAttribute("aria-live", "polite");
    output.style.marginTop = "6px";
    const summary = document.createElement("strong");
    const sample = document.createElement("div");
    output.append(summary, sample);
    const box = document.createElement("div");
    box.style.marginTop = "6px";
    box.append(button, output);
    trigger.insertAdjacentElement("afterend", box);

    function show(text, detail, isError) {
      summary.textContent = text;
      summary.style.color = isError ? "#ba2121" : "";
      sample.textContent = detail || "";
    }

    button.addEventListener("click", async function () {
      const token = form.querySelector("input[name=csrfmiddlewaretoken]");
      const tenant = form.querySelector("[name=tenant]");
      const body = new URLSearchParams();
      body.set("trigger", trigger.value);
      body.set("tenant", tenant ? tenant.value : trigger.dataset.tenant || "");
      button.disabled = true;
      show("Counting…", "", false);
      try {
        const response = await fetch(trigger.dataset.previewUrl, {
          method: "POST",
          headers: { "X-CSRFToken": token ? token.value : "" },
          body: body,
          credentials: "same-origin",
        });
        let data = null;
        try {
          data = await response.json();
        } catch (e) {
          data = null;
        }
        if (response.ok && data) {
          const n = Number(data.matching);
          show(`${n.toLocaleString()} ${n === 1 ? "customer matches" : "customers match"} now`,
            data.sample.length ? `Sample: ${data.sample.join(", ")}` : "", false);
        } else {
          show(`Cannot preview: ${(data && data.error) || `HTTP ${response.status}`}`, "", true);
        }
      } catch (e) {
        show("Cannot preview: the server did not answer", "", true);
      } finally {
        button.disabled = false;
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
