// Live updates for the dashboard over websockets. No build step, no framework.
// Run page: events arrive in seq order; a reconnect asks for those after the last seq seen,
// so nothing is missed or shown twice. Panels (header, requests, outputs, checkpoints) are
// server-rendered partials, fetched again when the run changes.
"use strict";

const Stepstone = (() => {
  function socketUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function setConnection(state) {
    const badge = document.getElementById("connection");
    if (badge) { badge.dataset.state = state; badge.textContent = state; }
  }

  // Open a socket that reconnects by itself with backoff; `onopen` says where to resume.
  function connect(pathFor, onmessage) {
    let delay = 500;
    function open() {
      const socket = new WebSocket(socketUrl(pathFor()));
      socket.onopen = () => { delay = 500; setConnection("live"); };
      socket.onmessage = (message) => onmessage(JSON.parse(message.data));
      socket.onclose = () => {
        setConnection("disconnected");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
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
  function watchRuns() {
    const container = document.getElementById("runs-table");
    const reload = debounce(async () => {
      try {
        const response = await fetch(container.dataset.url, {credentials: "same-origin"});
        if (response.ok) container.innerHTML = await response.text();
      } catch (error) { /* the server is away: the next status message reloads again */ }
    }, 200);
    connect(() => "/ws/runs/", (message) => {
      if (message.type !== "status") return;
      const cell = container.querySelector(`tr[data-run="${CSS.escape(message.run_id)}"] td.status`);
      if (cell) { cell.dataset.status = message.status; cell.textContent = message.status; }
      else reload();  // a run this page does not show yet
    });
  }

  return {watchRun, watchRuns};
})();
