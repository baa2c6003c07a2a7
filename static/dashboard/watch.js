// Starts the live updates a page asks for. Each element that a page shows live names its
// watcher in a data-watch attribute (run, runs, inbox, nav); this file, loaded after
// live.js on every live page, starts them in the page's order. Pages have no inline
// scripts: the site's Content-Security-Policy runs scripts from static files only.
"use strict";
(() => {
  const watchers = {
    run: (element) => Stepstone.watchRun(element),
    runs: () => Stepstone.watchRuns(),
    inbox: (element) => Stepstone.watchInbox(element),
    nav: (element) => Stepstone.watchNav(element),
  };
  document.querySelectorAll("[data-watch]").forEach((element) => {
    const watch = watchers[element.dataset.watch];
    if (watch) watch(element);
  });
})();
