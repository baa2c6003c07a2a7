// Actions that discard or leave work behind ask first: a form with data-confirm submits only
// once the person agreed to what its text says will happen.
"use strict";
document.addEventListener("submit", (event) => {
  const text = event.target.dataset && event.target.dataset.confirm;
  if (text && !window.confirm(text)) event.preventDefault();
});
