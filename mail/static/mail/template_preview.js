// The template editor's live preview (mail/templating/admin.py). As the operator types, the form's
// subject, HTML, text and variables are posted (after a pause in typing) to the admin's preview
// view, which renders them with the declared examples and answers JSON; the subject, the text and
// the problems are set as text, never as markup. When they render, the same fields are posted into
// the preview's iframe, whose sandbox allows nothing (no script, no form, no navigation of this
// page), and whose document comes with a policy of its own that lets the mail's inline styles
// apply (a srcdoc would inherit this page's, which refuses them). A file, not an inline script:
// the admin's Content-Security-Policy allows no inline script.
"use strict";

(function () {
  const PAUSE_MS = 300;
  const FIELDS = ["subject", "html", "text", "inline_css", "variables"];

  function start() {
    const panel = document.getElementById("template-preview");
    if (!panel) {
      return;
    }
    const form = panel.closest("form");
    const inputs = FIELDS.map((name) => form.elements.namedItem(name)).filter(Boolean);
    const shown = {
      state: document.getElementById("preview-state"),
      problems: document.getElementById("preview-problems"),
      examples: document.getElementById("preview-examples"),
      subject: document.getElementById("preview-subject"),
      html: document.getElementById("preview-html"),
      text: document.getElementById("preview-text"),
    };
    // The form that posts into the iframe: outside the editor's form (forms do not nest).
    const frameForm = document.createElement("form");
    frameForm.method = "post";
    frameForm.action = panel.dataset.frameUrl;
    frameForm.target = shown.html.name;
    frameForm.hidden = true;
    document.body.append(frameForm);
    let timer = null;
    let asked = 0; // only the answer to the latest request is shown

    function showProblems(problems) {
      shown.problems.replaceChildren();
      for (const [part, found] of Object.entries(problems)) {
        const item = document.createElement("p");
        item.className = "errornote";
        item.dataset.part = part;
        item.textContent = (part === "__all__" ? "" : part + ": ") + found.join(" ");
        shown.problems.append(item);
      }
      shown.problems.hidden = false;
    }

    function showHtml(fields) {
      frameForm.replaceChildren();
      for (const [name, value] of fields.entries()) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        frameForm.append(input);
      }
      frameForm.submit();
    }

    function show(answer, fields) {
      if (answer.examples) {
        shown.examples.textContent = JSON.stringify(answer.examples, null, 2);
      }
      if (answer.rendered) {
        shown.problems.hidden = true;
        shown.subject.textContent = answer.rendered.subject;
        showHtml(fields);
        shown.text.textContent = answer.rendered.text || "(no text part)";
        shown.state.textContent = "with the example values";
        panel.dataset.state = "rendered";
      } else {
        showProblems(answer.problems || { __all__: ["The preview failed."] });
        shown.state.textContent = "not updated: see the problems";
        panel.dataset.state = "problems";
      }
    }

    function refresh() {
      const mine = ++asked;
      const body = new FormData();
      body.append("csrfmiddlewaretoken", form.elements.namedItem("csrfmiddlewaretoken").value);
      for (const input of inputs) {
        if (input.type !== "checkbox" || input.checked) {
          body.append(input.name, input.value);
        }
      }
      panel.dataset.state = "rendering";
      fetch(panel.dataset.url, { method: "POST", body: body, credentials: "same-origin", redirect: "error" })
        .then((response) => response.json())
        .then((answer) => mine === asked && show(answer, body))
        .catch(() => mine === asked && show({ problems: { __all__: ["The preview is unavailable (logged out?): reload the page."] } }));
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, PAUSE_MS);
    }
    for (const input of inputs) {
      input.addEventListener("input", later);
      input.addEventListener("change", later);
    }
    refresh();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
