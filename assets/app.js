// FMU Gateway's own script: small glue only (htmx does the page updates).
// Loaded from our origin; the CSP forbids inline script.
"use strict";

// Copy buttons: <button data-copy="#selector"> copies the text of the selected element.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch (_) {
    // Clipboard access can be refused (plain http, permissions): select the text instead.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C";
  }
});

// Run form: each start value field has a Reset button (hidden without JavaScript, where the
// field simply keeps the default it was shown with) that puts the model's default back.
function showResetButtons(root) {
  root.querySelectorAll("button[data-reset]").forEach((b) => { b.hidden = false; });
}
document.addEventListener("DOMContentLoaded", () => showResetButtons(document));
document.addEventListener("htmx:afterSwap", (event) => showResetButtons(event.target));
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-reset]");
  if (!button) return;
  const field = document.getElementById(button.dataset.reset);
  if (!field) return;
  field.value = button.dataset.default;
  field.dispatchEvent(new Event("input", { bubbles: true }));
  field.focus();
});
