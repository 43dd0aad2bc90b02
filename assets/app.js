// FMU Gateway's own script: small glue only (htmx does the page updates).
// Loaded from our origin; the CSP forbids inline script.
"use strict";

// Copy buttons: <button data-copy="#selector"> copies the text of the selected element,
// <button data-copy-text="…"> the text given (e.g. a whole id shown shortened).
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy], [data-copy-text]");
  if (!button) return;
  const source = button.dataset.copy ? document.querySelector(button.dataset.copy) : null;
  const text = button.dataset.copyText ?? source?.textContent.trim();
  if (text === undefined) return;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (_) {
    // Clipboard access can be refused (plain http, permissions): select the text instead.
    if (!source) {
      window.prompt("Copy this:", text);
      return;
    }
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C";
  }
});

// The navigation menu (a <details>, open as sent so it works without JavaScript) folds on a
// narrow screen and stays unfolded on a wide one, also when the window is resized.
(() => {
  const menu = document.querySelector("details.nav-menu");
  if (!menu) return;
  const narrow = window.matchMedia("(max-width: 48rem)");
  const fit = () => { menu.open = !narrow.matches; };
  fit();
  narrow.addEventListener("change", fit);
  // A tap outside the open panel, or Escape, folds it again.
  document.addEventListener("click", (event) => {
    if (narrow.matches && menu.open && !menu.contains(event.target)) menu.open = false;
  });
  document.addEventListener("keydown", (event) => {
    if (narrow.matches && menu.open && event.key === "Escape") {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
})();

// Upload progress: htmx reports the bytes sent; the form's <progress> shows them while an
// upload is under way.
document.addEventListener("htmx:xhr:progress", (event) => {
  const bar = event.target.querySelector?.("progress#upload-progress");
  if (!bar || !event.detail.lengthComputable) return;
  bar.hidden = false;
  bar.value = Math.round((100 * event.detail.loaded) / event.detail.total);
});
document.addEventListener("htmx:afterRequest", (event) => {
  const bar = event.target.querySelector?.("progress#upload-progress");
  if (bar) bar.hidden = true;
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
