// Live updates for the dashboard over websockets. No build step, no framework.
// Run page: events arrive in seq order; a reconnect asks for those after the last seq seen,
// so nothing is missed or shown twice. Panels (header, requests, outputs, checkpoints) are
// server-rendered partials, fetched again when the run changes.
"use strict";

// Every page of someone who may view runs loads this file (base.html), and a page may load it
// again itself: the second load keeps the first one's object (and its sockets).
var Stepstone = window.Stepstone || (() => {
  function socketUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  // ------------------------------------------------------------------ the connection
  // A live page holds a socket or two (the navigation's, and its own). The page is "live"
  // when all are open; "disconnected" while one is away (the server down or unreachable),
  // which is what an operator must know first; "refused" when the server closed one for good
  // (4403: signed out or not allowed, 4404: the run is gone); "connecting" until then.
  const sockets = new Map();  // socket number -> its state
  const REFUSED = new Set([4403, 4404]);
  let lastMessageAt = new Date();  // the page was rendered up to date
  let leaving = false;  // the sockets close because the page goes away: no outage to show
  window.addEventListener("pagehide", () => { leaving = true; });
  window.addEventListener("pageshow", () => { leaving = false; });

  function pageState() {
    const states = [...sockets.values()];
    return ["disconnected", "refused", "connecting"].find((s) => states.includes(s)) || "live";
  }

  function clockTime(date) {
    const time = [date.getHours(), date.getMinutes(), date.getSeconds()]
      .map((n) => String(n).padStart(2, "0")).join(":");
    return date.toDateString() === new Date().toDateString()
      ? time : date.toLocaleDateString() + " " + time;
  }

  // The buttons that send an action (start, resume, rehydrate, cancel, answer): submit
  // buttons of the content's POST forms; not the header's log-out, nor GET filters.
  const ACTIONS = 'main form[method="post" i] button:not([type="button"]):not([type="reset"]), ' +
                  'main form[method="post" i] input[type="submit"]';

  // Disabled while disconnected: the action could not be sent, nor its outcome be seen.
  // Only buttons disabled here are enabled again (`data-offline` marks them).
  function setActionsEnabled(enabled) {
    document.querySelectorAll(ACTIONS).forEach((button) => {
      if (!enabled && !button.disabled) {
        button.disabled = true;
        button.dataset.offline = "";
      } else if (enabled && "offline" in button.dataset) {
        button.disabled = false;
        delete button.dataset.offline;
      }
    });
  }

  // Show the page's connection as `state`: the badge (on the pages that have one), the
  // banner saying since when the page is stale, and the action buttons.
  function setConnection(state) {
    if (leaving) return;
    const badge = document.getElementById("connection");
    if (badge) { badge.dataset.state = state; badge.textContent = state; }
    const banner = document.getElementById("connection-banner");
    if (banner) {
      banner.dataset.state = state;
      banner.hidden = state !== "disconnected" && state !== "refused";
      banner.textContent = state === "refused"
        ? "Live updates stopped: the server closed this page's connection (signed out, or " +
          "what the page shows is gone). Reload the page."
        : `Disconnected from the server \u2014 last update at ${clockTime(lastMessageAt)}. ` +
          "Reconnecting\u2026";
    }
    setActionsEnabled(state !== "disconnected");
  }

  // Open a socket that reconnects by itself with backoff (not after a refusal, which would
  // only be refused again). `pathFor` says where to resume; `onmessage` takes each message;
  // `onreopen` runs when a socket opens again after it was lost (to catch up on what the
  // page missed meanwhile, if its socket does not replay it).
  function connect(pathFor, onmessage, {onreopen = null} = {}) {
    const number = sockets.size;
    let delay = 500, opened = false;
    function mark(state) {
      sockets.set(number, state);
      setConnection(pageState());
    }
    function open() {
      const socket = new WebSocket(socketUrl(pathFor()));
      socket.onopen = () => {
        delay = 500;
        mark("live");
        if (opened && onreopen) onreopen();
        opened = true;
      };
      socket.onmessage = (message) => {
        lastMessageAt = new Date();
        let content;
        try { content = JSON.parse(message.data); } catch (error) { return; }  // not ours
        onmessage(content);
      };
      socket.onclose = (event) => {
        if (REFUSED.has(event.code)) { mark("refused"); return; }
        mark("disconnected");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    mark("connecting");
    open();
  }

  function debounce(fn, ms) {
    let timer = null;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function text(tag, content, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = content;
    return node;
  }

  // ------------------------------------------------------------------ one run
  function watchRun(page) {
    const runId = page.dataset.run;
    let lastSeq = Number(page.dataset.lastSeq || 0);
    const timeline = document.getElementById("timeline");
    const eventsList = document.getElementById("events");
    const steps = new Map();  // superstep -> {li, started, executors}

    async function refresh(part) {
      let response;
      try {
        response = await fetch(page.dataset.partsUrl + part + "/", {credentials: "same-origin"});
      } catch (error) {
        return;  // the server is away: the socket's reconnection brings the page up to date
      }
      if (response.ok) {
        const panel = document.getElementById(part === "header" ? "run-header" : part + "-panel");
        const connection = document.getElementById("connection");
        const state = connection ? connection.dataset.state : "disconnected";
        panel.innerHTML = await response.text();
        setConnection(state);
      }
    }
    const refreshAll = debounce(() => ["header", "requests", "outputs", "checkpoints", "history"].forEach(refresh), 120);

    function setNode(executorId, state) {
      const node = document.querySelector(`#graph g.node[data-executor="${CSS.escape(executorId)}"]`);
      if (node) node.dataset.state = state;
    }

    function step(number) {
      if (!steps.has(number)) {
        const li = document.createElement("li");
        li.dataset.superstep = number;
        li.className = "running";
        li.append(text("span", "superstep " + number, "step"), text("span", "", "who"),
                  text("span", "", "took"));
        timeline.append(li);
        steps.set(number, {li, started: null, executors: new Set(), messages: 0});
      }
      return steps.get(number);
    }

    function apply(event, live) {
      if (event.seq <= lastSeq && live) return;  // already shown
      lastSeq = Math.max(lastSeq, event.seq);
      if (live) {
        // Announced for observers (the latency benchmark, tests); the page keeps nothing.
        document.dispatchEvent(new CustomEvent("stepstone:event", {detail: {
          seq: event.seq, type: event.type, created_at: event.created_at}}));
        const li = document.createElement("li");
        li.dataset.seq = event.seq;
        li.append(text("span", "#" + event.seq, "seq"), " ", text("b", event.type));
        if (event.executor_id) li.append(" " + event.executor_id);
        if (event.superstep) li.append(" ", text("span", "superstep " + event.superstep, "muted"));
        eventsList.append(li);
      }
      const s = event.superstep;
      switch (event.type) {
        case "superstep_started":
          step(s).started = Date.parse(event.created_at);
          break;
        case "executor_invoked":
          setNode(event.executor_id, "running");
          if (s) {
            const st = step(s);
            st.executors.add(event.executor_id);
            st.messages += 1;  // one invocation per message delivered
            st.li.querySelector(".who").textContent = " " + [...st.executors].join(", ") +
              " · " + st.messages + (st.messages === 1 ? " message" : " messages");
          }
          break;
        case "executor_completed": setNode(event.executor_id, "done"); break;
        case "executor_failed": setNode(event.executor_id, "failed"); break;
        case "superstep_completed": {
          const st = step(s);
          st.li.className = "done";
          if (st.started) st.li.querySelector(".took").textContent =
            " · " + Math.max(0, Date.parse(event.created_at) - st.started) + " ms";
          const superstep = document.getElementById("run-superstep");
          if (superstep) superstep.textContent = s;
          break;
        }
        case "failed": if (s && steps.has(s)) steps.get(s).li.className = "failed"; break;
      }
      if (live && ["status", "request_info", "output", "failed", "superstep_completed"].includes(event.type)) {
        refreshAll();
      }
    }

    const initial = JSON.parse(document.getElementById("initial-events").textContent || "[]");
    initial.forEach((event) => apply(event, false));
    lastSeq = Number(page.dataset.lastSeq || 0);

    connect(() => `/ws/runs/${runId}/?after=${lastSeq}`, (message) => {
      if (message.type === "events") message.events.forEach((event) => apply(event, true));
      if (message.type === "status") {
        const status = document.getElementById("run-status");
        if (status && status.dataset.status !== message.status) {
          status.dataset.status = message.status;
          status.textContent = message.status;
          refreshAll();
        }
      }
    });
  }

  // ------------------------------------------------------------------ runs list
  // Statuses and supersteps change in place; a run the page does not show yet reloads the
  // table, and so does a reconnection (the socket does not replay what the page missed).
  function watchRuns() {
    const container = document.getElementById("runs-table");
    const reload = debounce(async () => {
      try {
        const response = await fetch(container.dataset.url, {credentials: "same-origin"});
        if (response.ok) {
          container.innerHTML = await response.text();
          setConnection(pageState());  // new rows' buttons, if any, as the connection is
        }
      } catch (error) { /* the server is away: the next status message reloads again */ }
    }, 200);
    function row(runId) {
      return container.querySelector(`tr[data-run="${CSS.escape(runId)}"]`);
    }
    connect(() => "/ws/runs/", (message) => {
      if (message.type === "progress") {
        // Runs this page does not show are not worth a reload: their status will be.
        for (const [runId, superstep] of Object.entries(message.supersteps)) {
          const cell = row(runId) && row(runId).querySelector("td.superstep");
          if (cell) cell.textContent = superstep;
        }
        return;
      }
      if (message.type !== "status") return;
      const pill = row(message.run_id) && row(message.run_id).querySelector("td.status .status");
      if (pill) { pill.dataset.status = message.status; pill.textContent = message.status; }
      else reload();  // a run this page does not show yet
    }, {onreopen: reload});
  }

  // ------------------------------------------------------------------ navigation
  // The navigation's count of open requests, on every page: set from each message of
  // /ws/requests/ (sent on connecting and when the open requests change), which is then
  // announced to the page as a `stepstone:requests` event ({open, digest}) for the inbox.
  function watchNav(count) {
    connect(() => "/ws/requests/", (message) => {
      if (message.type !== "requests") return;
      if (count) { count.dataset.count = message.open; count.textContent = message.open; }
      document.dispatchEvent(new CustomEvent("stepstone:requests", {detail: {
        open: message.open, digest: message.digest}}));
    });
  }

  // ------------------------------------------------------------------ requests inbox
  // The inbox follows the open requests without a reload: when their set changes (and once
  // after the navigation's socket connects, for what changed while the page loaded), the
  // list is fetched and merged card by card. A card on the page is never re-rendered or
  // moved, so what someone is typing into its form stays, focus included. New requests are
  // inserted where the list puts them; a request answered or cancelled elsewhere is removed,
  // unless the focus is in its card: that card stays, marked as no longer open and its
  // buttons disabled, until the focus leaves it.
  function watchInbox(container) {
    const CARD = "form.request-form[data-request]";
    let seen = null, fetching = false, again = false;

    function cardOf(id) {
      return container.querySelector(`form.request-form[data-request="${CSS.escape(id)}"]`);
    }

    function markGone(card) {
      if ("gone" in card.dataset) return;
      card.dataset.gone = "";
      card.querySelectorAll("button, input[type=submit]").forEach((button) => {
        button.disabled = true;
        delete button.dataset.offline;  // never to be enabled again by a reconnection
      });
      card.prepend(text("p", "No longer open: answered or cancelled elsewhere.", "gone-note"));
      card.addEventListener("focusout", (event) => {
        if (card.contains(event.relatedTarget)) return;
        card.remove();
        refresh();  // the list as it is now (its "nothing is waiting" note, if so)
      });
    }

    async function merge() {
      const fresh = document.createElement("div");
      try {
        const response = await fetch(container.dataset.url, {credentials: "same-origin"});
        if (!response.ok) return;
        fresh.innerHTML = await response.text();
      } catch (error) {
        return;  // the server is away: the next connection's message asks again
      }
      const wanted = new Map([...fresh.querySelectorAll(CARD)].map((c) => [c.dataset.request, c]));
      container.querySelectorAll(CARD).forEach((card) => {
        if (wanted.has(card.dataset.request)) return;
        if (card.contains(document.activeElement)) markGone(card);
        else card.remove();
      });
      let previous = null;  // the card the next new one goes after, in the list's order
      for (const [id, card] of wanted) {
        const shown = cardOf(id);
        if (shown && !("gone" in shown.dataset)) { previous = shown; continue; }
        card.classList.add("arrived");
        if (previous) previous.after(card); else container.prepend(card);
        previous = card;
      }
      const empty = container.querySelector("p.empty");
      if (container.querySelector(CARD)) {
        if (empty) empty.remove();
      } else if (!empty) {
        const note = fresh.querySelector("p.empty");
        if (note) container.append(note);
      }
      setConnection(pageState());  // new cards' buttons, as the connection is
    }

    // One fetch at a time; changes announced meanwhile make one more.
    async function refresh() {
      if (fetching) { again = true; return; }
      fetching = true;
      try {
        do { again = false; await merge(); } while (again);
      } finally {
        fetching = false;
      }
    }

    document.addEventListener("stepstone:requests", (event) => {
      if (event.detail.digest === seen) return;
      seen = event.detail.digest;
      refresh();
    });
  }

  return {watchRun, watchRuns, watchNav, watchInbox};
})();
