// The presence board: one row per user, patched in place from the presence stream.
//
// Messages are collected per user and applied once per animation frame, so a burst of
// thousands of changes costs one layout; a row is never rebuilt, only the cells whose
// value changed are written. Filtering toggles `hidden` on rows.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const S = data.strings;
  const lang = data.lang;
  const collator = new Intl.Collator(lang, { sensitivity: "base", numeric: true });
  const numbers = new Intl.NumberFormat(lang);
  const tbody = document.getElementById("rows");
  const template = document.getElementById("row-template");
  const countEl = document.getElementById("count");
  const countLive = document.getElementById("count-live");
  let announce = 0;
  const emptyEl = document.getElementById("empty");
  const live = document.getElementById("live");
  const liveText = document.getElementById("live-text");
  const form = document.getElementById("filters");
  const search = document.getElementById("q");
  const statusSelect = document.getElementById("f-status");
  const groupSelect = document.getElementById("f-group");

  let directory = data.users; // id -> [display name, group id]
  let groups = data.groups; // id -> name
  const rows = new Map(); // user id -> row entry
  const order = []; // row entries, sorted by name
  const pending = new Map(); // user id -> newest message not yet shown
  let scheduled = false;
  const stats = (window.pbBoard = { messages: 0, frames: 0, rows: 0, lastFrameMs: 0 });

  const fold = (text) => text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  const format = (message, values) =>
    message.replace(/%\((\w+)\)s/g, (_, key) => (key in values ? values[key] : ""));

  // -- rows ------------------------------------------------------------------------------

  function createEntry(id) {
    const tr = template.content.firstElementChild.cloneNode(true);
    const $ = (selector) => tr.querySelector(selector);
    const entry = {
      id, tr, v: {},
      link: $(".name"), uid: $(".uid"), dot: $(".dot"), statusText: $(".status-text"),
      text: $(".text"), fwd: $(".fwd"), phoneCell: $(".c-phone"), phoneText: $(".phone-text"),
      teamsText: $(".teams-text"), held: $(".held"), mic: $(".mic"), micText: $(".mic-text"),
      groupCell: $(".c-group"),
      status: "", onPhone: false, heldByUser: false, groupId: "", search: "", displayName: id,
    };
    $(".held-text").textContent = S.held;
    entry.held.title = S.held_title;
    entry.mic.title = S.mic_title;
    // Everyone signed in sees the board; only administrators open other users' pages.
    if (data.link_all || id === data.me) {
      entry.link.href = "/console/users/" + encodeURIComponent(id);
    } else {
      entry.link.removeAttribute("href");
    }
    tr.dataset.user = id;
    describe(entry);
    return entry;
  }

  function describe(entry) {
    const [name, group] = directory[entry.id] || [entry.id, ""];
    entry.displayName = name;
    entry.link.textContent = name;
    entry.uid.textContent = name === entry.id ? "" : entry.id;
    entry.groupId = group;
    entry.groupCell.textContent = groups[group] || group;
    entry.search = fold(name + " " + entry.id);
  }

  function put(entry, key, value, write) {
    if (entry.v[key] !== value) {
      entry.v[key] = value;
      write(value);
    }
  }

  function patch(entry, p) {
    const teams = p.teams || {};
    put(entry, "color", p.color, (c) => { entry.dot.style.background = c; });
    put(entry, "status", S.status[p.status] || p.status, (t) => { entry.statusText.textContent = t; });
    put(entry, "text", p.text || "", (t) => { entry.text.textContent = t; });
    const forwarding = p.call_forwarding ? format(S.forwarding, { target: p.call_forwarding }) : "";
    put(entry, "fwd", forwarding, (t) => { entry.fwd.textContent = t; });
    let phone = S.telephony[p.telephony] || p.telephony;
    if (p.telephony !== "idle" && p.telephony_source === "teams") phone += S.teams_suffix;
    put(entry, "phone", phone, (t) => { entry.phoneText.textContent = t; });
    const phoneClass = "c-phone " + (p.telephony === "on_the_phone" ? "on" : p.telephony);
    put(entry, "phoneClass", phoneClass, (c) => { entry.phoneCell.className = c; });
    let teamsText = S.not_synced;
    if (teams.availability) {
      const availability = S.availability[teams.availability] || teams.availability;
      const activity = S.activity[teams.activity] || teams.activity || "";
      teamsText = activity && activity !== availability ? availability + " · " + activity : availability;
      if (teams.out_of_office) teamsText += " · " + S.out_of_office;
      if (teams.status_message) teamsText += " · „" + teams.status_message + "“";
    }
    put(entry, "teams", teamsText, (t) => {
      entry.teamsText.textContent = t;
      entry.teamsText.classList.toggle("none", !teams.availability);
    });
    put(entry, "held", Boolean(teams.held_by_user), (h) => { entry.held.hidden = !h; });
    let mic = "";
    if (p.microphone) {
      mic = typeof p.microphone === "string" ? p.microphone
        : p.microphone.service || p.microphone.name || p.microphone.process || "";
    }
    put(entry, "mic", mic, (m) => { entry.micText.textContent = m; entry.mic.hidden = !m; });
    entry.status = p.status;
    entry.onPhone = p.telephony === "on_the_phone";
    entry.heldByUser = Boolean(teams.held_by_user);
  }

  function compare(a, b) {
    return collator.compare(a.displayName, b.displayName) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  function insert(entry) {
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(order[mid], entry) < 0) lo = mid + 1;
      else hi = mid;
    }
    order.splice(lo, 0, entry);
    tbody.insertBefore(entry.tr, lo + 1 < order.length ? order[lo + 1].tr : null);
  }

  // A deleted user's row goes (a `removed` message, or missing from a new snapshot).
  function remove(entry) {
    rows.delete(entry.id);
    const at = order.indexOf(entry);
    if (at >= 0) order.splice(at, 1);
    entry.tr.remove();
  }

  function resortAll() {
    order.sort(compare);
    const fragment = document.createDocumentFragment();
    for (const entry of order) fragment.appendChild(entry.tr);
    tbody.appendChild(fragment);
  }

  // -- filter ------------------------------------------------------------------------------

  const filter = { q: "", status: "", group: "" };

  function matches(entry) {
    if (filter.group && entry.groupId !== filter.group) return false;
    if (filter.status === "phone") { if (!entry.onPhone) return false; }
    else if (filter.status === "held") { if (!entry.heldByUser) return false; }
    else if (filter.status && entry.status !== filter.status) return false;
    return !filter.q || entry.search.includes(filter.q);
  }

  function applyFilter(entry) {
    const hide = !matches(entry);
    if (entry.tr.hidden !== hide) entry.tr.hidden = hide;
  }

  function updateCount() {
    let shown = 0;
    for (const entry of order) if (!entry.tr.hidden) shown += 1;
    const text = format(S.count, { shown: numbers.format(shown), total: numbers.format(order.length) });
    if (countEl.textContent !== text) countEl.textContent = text;
    const none = shown === 0 && order.length > 0;
    if (emptyEl.hidden === none) emptyEl.hidden = !none;
  }

  function readFilter() {
    filter.q = fold(search.value.trim());
    filter.status = statusSelect.value;
    filter.group = groupSelect.value;
    const params = new URLSearchParams();
    if (search.value.trim()) params.set("q", search.value.trim());
    if (filter.status) params.set("status", filter.status);
    if (filter.group) params.set("group", filter.group);
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    for (const entry of order) applyFilter(entry);
    updateCount();
    // Tell screen readers the result once typing pauses (not on every live change).
    clearTimeout(announce);
    announce = setTimeout(() => { countLive.textContent = countEl.textContent; }, 700);
  }

  function restoreFilter() {
    const params = new URLSearchParams(location.search);
    search.value = params.get("q") || "";
    for (const [select, key] of [[statusSelect, "status"], [groupSelect, "group"]]) {
      const value = params.get(key) || "";
      if ([...select.options].some((o) => o.value === value)) select.value = value;
    }
    filter.q = fold(search.value.trim());
    filter.status = statusSelect.value;
    filter.group = groupSelect.value;
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  search.addEventListener("input", readFilter);
  statusSelect.addEventListener("change", readFilter);
  groupSelect.addEventListener("change", readFilter);

  // -- applying messages, one animation frame at a time ----------------------------------------

  let missing = false;

  function flush() {
    scheduled = false;
    const started = performance.now();
    const batch = [...pending.values()];
    pending.clear();
    const fresh = [];
    for (const message of batch) {
      let entry = rows.get(message.user);
      if (message.type === "removed") {
        if (entry) remove(entry);
        continue;
      }
      if (!entry) {
        if (!(message.user in directory)) missing = true;
        entry = createEntry(message.user);
        rows.set(message.user, entry);
        fresh.push(entry);
      }
      patch(entry, message);
      applyFilter(entry);
    }
    if (fresh.length > 50 || (fresh.length && order.length === 0)) {
      order.push(...fresh);
      resortAll();
    } else {
      for (const entry of fresh) insert(entry);
    }
    updateCount();
    stats.frames += 1;
    stats.rows = order.length;
    stats.lastFrameMs = performance.now() - started;
    if (missing) refreshDirectory();
  }

  function queue(message) {
    stats.messages += 1;
    pending.set(message.user, message);
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }

  // Users created after the page was loaded: fetch their names and groups once.
  let fetching = false;
  async function refreshDirectory() {
    if (fetching) return;
    fetching = true;
    missing = false;
    try {
      const response = await fetch("/console/directory.json", { credentials: "same-origin" });
      if (response.ok) {
        const fresh = await response.json();
        directory = fresh.users;
        groups = fresh.groups;
        for (const [id, name] of Object.entries(groups)) {
          if (![...groupSelect.options].some((o) => o.value === id)) groupSelect.add(new Option(name, id));
        }
        for (const entry of order) describe(entry);
        resortAll();
        for (const entry of order) applyFilter(entry);
        updateCount();
      }
    } finally {
      fetching = false;
    }
  }

  // -- the stream ------------------------------------------------------------------------------

  function setLive(state) {
    live.dataset.state = state;
    liveText.textContent = S[state];
  }

  let attempt = 0;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/console/stream?lang=" + encodeURIComponent(lang));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") {
        attempt = 0;
        setLive("live");
        const present = new Set(message.presences.map((presence) => presence.user));
        for (const id of rows.keys()) if (!present.has(id)) queue({ type: "removed", user: id });
        for (const presence of message.presences) queue(presence);
      } else if (message.type === "presence" || message.type === "removed") {
        queue(message);
      }
    };
    socket.onclose = (event) => {
      if (event.code === 1008) {
        location.href = "/console/login?next=" + encodeURIComponent(location.pathname + location.search);
        return;
      }
      setLive("reconnecting");
      const wait = Math.min(15000, 500 * 2 ** attempt);
      attempt += 1;
      setTimeout(connect, wait);
    };
  }

  restoreFilter();
  updateCount();
  connect();
})();
