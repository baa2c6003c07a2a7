// Live updates for the dashboard over websockets. No build step, no framework.
// Run page: events arrive in seq order; a reconnect asks for those after the last seq seen,
// so nothing is missed or shown twice. Panels (header, requests, outputs, checkpoints,
// history) are server-rendered partials, fetched again (throttled) when the run changes.
"use strict";

// Every page of someone who may view runs loads this file once (base.html).
const Stepstone = (() => {
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

  // Run at most every `ms` while calls keep coming, and once more after the last call: a
  // steady stream of events refreshes the panels every `ms`, never starving them (as a
  // debounce would), and the final state is always fetched.
  function throttle(fn, ms) {
    let last = 0, timer = null;
    return () => {
      if (timer) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
    };
  }

  // ------------------------------------------------------------------ one run
  // The page shows windows of the run's history (the newest supersteps, events and
  // checkpoints by default). Live events extend a window that shows the newest items and
  // drop its oldest, so the page keeps its size; a window on older items stays as it is.
  function watchRun(page) {
    const runId = page.dataset.run;
    let lastSeq = Number(page.dataset.lastSeq || 0);
    const currentBranch = page.dataset.currentBranch === "true";
    const followTimeline = currentBranch && page.dataset.followTimeline === "true";
    const followEvents = currentBranch && page.dataset.followEvents === "true";
    const typeFilter = page.dataset.eventType, executorFilter = page.dataset.executor;
    const maxSteps = Number(page.dataset.timelineSteps), maxEvents = Number(page.dataset.eventsShown);
    const timeline = document.getElementById("timeline");
    const eventsList = document.getElementById("events");
    const steps = new Map();  // superstep -> {li, started, executors, messages}
    timeline.querySelectorAll("li[data-superstep]").forEach((li) => {
      const who = li.dataset.executors ? li.dataset.executors.split(",") : [];
      steps.set(Number(li.dataset.superstep), {li, started: Date.parse(li.dataset.started) || null,
        executors: new Set(who), messages: Number(li.dataset.messages || 0)});
    });

    async function refresh(part) {
      let response;
      try {
        response = await fetch(page.dataset.partsUrl + part + "/" + page.dataset.query,
                               {credentials: "same-origin"});
      } catch (error) {
        return;  // the server is away: the socket's reconnection brings the page up to date
      }
      if (response.ok) {
        const panel = document.getElementById(part === "header" ? "run-header" : part + "-panel");
        const connection = document.getElementById("connection");
        const state = connection ? connection.dataset.state : "disconnected";
        panel.innerHTML = await response.text();
        setConnection(state);
        if (part === "requests") markWaiting();
      }
    }
    const refreshPanels = throttle(() => ["header", "requests", "outputs", "checkpoints", "history"].forEach(refresh), 250);

    // ---- the graph: each executor idle, running, waiting (open request), done or failed
    function setNode(executorId, state) {
      const node = document.querySelector(`#graph g.node[data-executor="${CSS.escape(executorId)}"]`);
      if (node) node.dataset.state = state;
    }
    function markWaiting() {
      const waiting = new Set([...document.querySelectorAll("#requests [data-executor]")]
        .map((form) => form.dataset.executor));
      // A request made inside a sub-workflow is answered by the sub-workflow's box (the
      // form's executor); the inner executor that asked (marked by its request_info event
      // or the page's initial states) keeps waiting while its box does.
      const boxWaiting = (id) => [...waiting].some((w) => id.startsWith(w + "/"));
      document.querySelectorAll("#graph g.node").forEach((node) => {
        if (waiting.has(node.dataset.executor)) node.dataset.state = "waiting";
        else if (node.dataset.state === "waiting" && !boxWaiting(node.dataset.executor))
          node.dataset.state = "idle";
      });
    }
    // A jump to a superstep marks its items: bring the oldest of them into view inside each
    // scrolling list (they are newest first, so it is the last one marked).
    [timeline, eventsList].forEach((list) => {
      const marked = list.querySelectorAll(".target");
      const target = marked[marked.length - 1];
      if (target) list.scrollTop += target.getBoundingClientRect().top -
        list.getBoundingClientRect().top - list.clientHeight / 2;
    });

    const initialStates = JSON.parse(document.getElementById("executor-states").textContent || "{}");
    Object.entries(initialStates).forEach(([executor, state]) => setNode(executor, state));

    // ---- the timeline
    function trim(list, max) {  // drop the oldest items (at the end: lists are newest first)
      while (list.children.length > max) list.lastElementChild.remove();
    }
    function step(number) {
      if (!steps.has(number)) {
        timeline.querySelectorAll("li.none").forEach((li) => li.remove());
        const li = document.createElement("li");
        li.dataset.superstep = number;
        li.className = "running";
        li.append(text("span", "superstep " + number, "step"), text("span", "", "who"),
                  text("span", "", "took"));
        timeline.prepend(li);  // newest first
        steps.set(number, {li, started: null, executors: new Set(), messages: 0});
        while (steps.size > maxSteps) {
          const oldest = Math.min(...steps.keys());
          steps.get(oldest).li.remove();
          steps.delete(oldest);
        }
        const high = document.querySelector("#timeline-count .high");
        const newest = document.querySelector("#timeline-count .newest");
        if (high) high.textContent = number;
        if (newest) newest.textContent = number;
      }
      return steps.get(number);
    }
    function applyToTimeline(event) {
      const s = event.superstep;
      if (event.type === "superstep_started") {
        document.querySelectorAll("#graph g.node").forEach((node) => {
          if (node.dataset.state !== "waiting") node.dataset.state = "idle";
        });
      }
      if (!followTimeline || !s) return;
      switch (event.type) {
        case "superstep_started": step(s).started = Date.parse(event.created_at); break;
        case "executor_invoked": {
          const st = step(s);
          st.executors.add(event.executor_id);
          st.messages += 1;  // one invocation per message delivered (a sub-workflow's inner ones too)
          st.li.querySelector(".who").textContent = " " + [...st.executors].join(", ") +
            " · " + st.messages + (st.messages === 1 ? " message" : " messages");
          break;
        }
        case "superstep_completed": {
          const st = step(s);
          st.li.className = "done";
          if (st.started) st.li.querySelector(".took").textContent =
            " · " + Math.max(0, Date.parse(event.created_at) - st.started) + " ms";
          break;
        }
        case "executor_failed": case "failed":
          if (steps.has(s)) steps.get(s).li.className = "failed";
          break;
      }
    }

    // ---- the event log
    function appendEvent(event) {
      if (!followEvents) return;
      if (typeFilter && event.type !== typeFilter) return;
      if (executorFilter && event.executor_id !== executorFilter) return;
      const li = document.createElement("li");
      li.dataset.seq = event.seq;
      li.dataset.type = event.type;
      const time = text("time", event.created_at.slice(11, 23));
      time.setAttribute("datetime", event.created_at);
      li.append(text("span", "#" + event.seq, "seq"), " ", time, " ", text("b", event.type));
      if (event.executor_id) li.append(" " + event.executor_id);
      if (event.superstep !== null && event.superstep !== undefined)
        li.append(" ", text("span", "superstep " + event.superstep, "muted"));
      if (event.data !== null && event.data !== undefined && JSON.stringify(event.data) !== "{}") {
        const details = document.createElement("details");
        const payload = JSON.stringify(event.data, null, 2);
        details.append(text("summary", "payload"), text("pre", payload.length > 2000 ?
          payload.slice(0, 2000) + "\n… (the API has the whole event)" : payload, "json"));
        li.append(details);
      }
      eventsList.prepend(li);  // newest first
      trim(eventsList, maxEvents);
      const count = document.getElementById("events-count");
      const total = count && count.querySelector(".total");
      if (total) {
        total.textContent = Number(total.textContent) + 1;
        count.querySelector(".last").textContent = event.seq;
        count.querySelector(".shown").textContent = eventsList.children.length;
      }
    }

    function apply(event) {
      if (event.seq <= lastSeq) return;  // already shown
      lastSeq = Math.max(lastSeq, event.seq);
      // Announced for observers (the latency benchmark, tests); the page keeps nothing.
      document.dispatchEvent(new CustomEvent("stepstone:event", {detail: {
        seq: event.seq, type: event.type, created_at: event.created_at}}));
      if (!currentBranch) return;  // the page shows another branch's line
      appendEvent(event);
      applyToTimeline(event);
      switch (event.type) {
        case "executor_invoked": setNode(event.executor_id, "running"); break;
        case "executor_completed": setNode(event.executor_id, "done"); break;
        case "executor_failed": setNode(event.executor_id, "failed"); break;
        case "request_info": setNode(event.executor_id, "waiting"); break;
        case "superstep_completed": {
          const superstep = document.getElementById("run-superstep");
          if (superstep) superstep.textContent = event.superstep;
          break;
        }
      }
      if (["status", "request_info", "output", "failed", "superstep_completed", "stopped"].includes(event.type)) {
        refreshPanels();
      }
    }

    connect(() => `/ws/runs/${runId}/?after=${lastSeq}`, (message) => {
      if (message.type === "events") message.events.forEach(apply);
      if (message.type === "status") {
        const status = document.getElementById("run-status");
        if (status && status.dataset.status !== message.status) {
          status.dataset.status = message.status;
          status.textContent = message.status;
          refreshPanels();
          if (!["queued", "running"].includes(message.status)) {
            document.querySelectorAll('#graph g.node[data-state="running"]')
              .forEach((node) => { node.dataset.state = "idle"; });
          }
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
