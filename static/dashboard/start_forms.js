// A refused start: the summary at the top is read out first, and each of its links puts
// the cursor in the field it names (following a link to a field only scrolls to it).
"use strict";
(() => {
  const summary = document.querySelector(".error-summary");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#']");
    const field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field || !field.matches("input, select, textarea")) return;
    event.preventDefault();
    field.scrollIntoView({block: "center"});
    field.focus();
  });
})();
