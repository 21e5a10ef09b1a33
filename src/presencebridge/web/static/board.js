// The presence board: one row per user, patched in place from the presence stream.
//
// Messages are collected per user and applied once per animation frame, so a burst of
// thousands of changes costs one layout; a row is never rebuilt, only the cells whose
// value changed are written. Every row stays in the document in sort order; filtering
// and paging toggle `hidden` (a page shows `page_size` rows), so changing the page or
// the filter costs no rendering of rows.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const S = data.strings;
  const lang = data.lang;
  const pageSize = data.page_size || 100;
  const collator = new Intl.Collator(lang, { sensitivity: "base", numeric: true });
  const numbers = new Intl.NumberFormat(lang);
  const clockTime = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const boardEl = document.getElementById("board");
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
  const sortSelect = document.getElementById("f-sort");
  const dirSelect = document.getElementById("f-dir");
  const exportLink = document.getElementById("export");
  const pager = document.getElementById("pager");
  const prevButton = document.getElementById("prev");
  const nextButton = document.getElementById("next");
  const pageText = document.getElementById("page-text");
  const staleEl = document.getElementById("stale");
  const staleText = document.getElementById("stale-text");
  const headers = [...document.querySelectorAll("#board-head [role=columnheader]")];

  let directory = data.users; // id -> [display name, group id]
  let groups = data.groups; // id -> name
  const rows = new Map(); // user id -> row entry
  let order = []; // row entries, in the board's sort order
  const pending = new Map(); // user id -> newest message not yet shown
  let scheduled = false;
  const stats = (window.pbBoard = { messages: 0, frames: 0, rows: 0, lastFrameMs: 0 });
  // The hub's clock may differ from the browser's (and tests move it): status-since
  // times are counted against the hub's, estimated from the page's `now`.
  let clockOffset = data.health && data.health.now ? Date.parse(data.health.now) - Date.now() : 0;

  // Case, accents and ß fold away: "Muller" finds "Müller", "jürgen müll" finds "Jürgen Müller".
  const fold = (text) =>
    text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase().replace(/ß/g, "ss");
  const terms = (text) => fold(text).split(/[\s,;]+/).filter(Boolean);
  const format = (message, values) =>
    message.replace(/%\((\w+)\)s/g, (_, key) => (key in values ? values[key] : ""));

  // -- rows ------------------------------------------------------------------------------

  function createEntry(id) {
    const tr = template.content.firstElementChild.cloneNode(true);
    const $ = (selector) => tr.querySelector(selector);
    const entry = {
      id, tr, v: {},
      link: $(".name"), uid: $(".uid"), statusCell: $(".c-status"), icon: $(".status-icon"),
      use: $(".status-icon use"), statusText: $(".status-text"), since: $(".since"),
      text: $(".text"), fwd: $(".fwd"), phoneCell: $(".c-phone"), phoneText: $(".phone-text"),
      teamsText: $(".teams-text"), held: $(".held"), mic: $(".mic"), micText: $(".mic-text"),
      groupCell: $(".c-group"),
      status: "", onPhone: false, heldByUser: false, groupId: "", search: "", displayName: id,
      sinceAt: null, keys: {},
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
    entry.keys.group = entry.groupCell.textContent;
    entry.search = fold(name + " " + entry.id);
  }

  function put(entry, key, value, write) {
    if (entry.v[key] !== value) {
      entry.v[key] = value;
      write(value);
    }
  }

  function sinceText(at, now) {
    if (at === null) return S.since_unknown;
    const minutes = Math.max(0, Math.floor((now - at) / 60000));
    if (minutes < 1) return S.since_now;
    if (minutes < 60) return format(S.since_minutes, { m: numbers.format(minutes) });
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return format(S.since_hours, { h: numbers.format(hours), m: numbers.format(minutes % 60) });
    return format(S.since_days, { d: numbers.format(Math.floor(hours / 24)), h: numbers.format(hours % 24) });
  }

  function showSince(entry, now) {
    put(entry, "since", sinceText(entry.sinceAt, now), (t) => { entry.since.textContent = t; });
  }

  function patch(entry, p) {
    const before = sortValue(entry);
    const teams = p.teams || {};
    const statusLabel = S.status[p.status] || p.status;
    put(entry, "status", p.status, (s) => {
      entry.use.setAttribute("href", "#st-" + (s in S.status ? s : "offline"));
      entry.icon.setAttribute("class", "status-icon st-" + s);
      entry.statusCell.dataset.status = s;
    });
    put(entry, "statusText", statusLabel, (t) => { entry.statusText.textContent = t; });
    entry.sinceAt = p.status_since ? Date.parse(p.status_since) : null;
    showSince(entry, Date.now() + clockOffset);
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
    put(entry, "synced", Boolean(teams.availability), (s) => { entry.tr.classList.toggle("synced", s); });
    put(entry, "held", Boolean(teams.held_by_user || teams.status_message_held_by_user), (h) => { entry.held.hidden = !h; });
    let mic = "";
    if (p.microphone) {
      mic = typeof p.microphone === "string" ? p.microphone
        : p.microphone.service || p.microphone.name || p.microphone.process || "";
    }
    put(entry, "mic", mic, (m) => { entry.micText.textContent = m; entry.mic.hidden = !m; });
    entry.status = p.status;
    entry.onPhone = p.telephony === "on_the_phone";
    entry.heldByUser = Boolean(teams.held_by_user || teams.status_message_held_by_user);
    entry.keys.status = STATUS_RANK[p.status] ?? 9;
    entry.keys.text = p.text || "";
    entry.keys.phone = phone;
    entry.keys.teams = teams.availability ? teamsText : "";
    entry.keys.mic = mic;
    if (sort.key !== "name" && sort.key !== "group" && sortValue(entry) !== before) resort = true;
  }

  // -- sorting -------------------------------------------------------------------------------

  const STATUS_RANK = Object.fromEntries(Object.keys(S.status).map((s, i) => [s, i]));
  const SORT_KEYS = ["name", "status", "since", "text", "phone", "teams", "mic", "group"];
  const sort = { key: "name", dir: 1 };
  let resort = false;

  function sortValue(entry) {
    if (sort.key === "since") return entry.sinceAt;
    return entry.keys[sort.key];
  }

  function byName(a, b) {
    return collator.compare(a.displayName, b.displayName) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  function compare(a, b) {
    let result = 0;
    if (sort.key === "since") {
      // Ascending: the shortest time first; unknown (before the last restart) is longest.
      const x = a.sinceAt ?? -Infinity;
      const y = b.sinceAt ?? -Infinity;
      result = x === y ? 0 : x < y ? 1 : -1; // ascending: the shortest time first
    } else if (sort.key === "status") {
      result = a.keys.status - b.keys.status;
    } else if (sort.key !== "name") {
      const x = a.keys[sort.key] || "";
      const y = b.keys[sort.key] || "";
      // Empty values last, whichever the direction.
      if (!x !== !y) return x ? -1 : 1;
      result = collator.compare(x, y);
    }
    if (result === 0) return byName(a, b) * (sort.key === "name" ? sort.dir : 1);
    return result * sort.dir;
  }

  function resortAll() {
    order.sort(compare);
    const fragment = document.createDocumentFragment();
    for (const entry of order) fragment.appendChild(entry.tr);
    tbody.appendChild(fragment);
    resort = false;
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

  function showSort() {
    for (const header of headers) {
      const active = header.dataset.sort === sort.key;
      if (active) header.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
      else header.removeAttribute("aria-sort");
    }
    sortSelect.value = sort.key;
    dirSelect.value = sort.dir > 0 ? "asc" : "desc";
  }

  function setSort(key, dir) {
    sort.key = SORT_KEYS.includes(key) ? key : "name";
    sort.dir = dir < 0 ? -1 : 1;
    showSort();
    resortAll();
    page = 0;
    render();
    saveState();
  }

  for (const header of headers) {
    header.querySelector("button").addEventListener("click", () => {
      const key = header.dataset.sort;
      setSort(key, key === sort.key ? -sort.dir : 1);
    });
  }
  sortSelect.addEventListener("change", () => setSort(sortSelect.value, sort.dir));
  dirSelect.addEventListener("change", () => setSort(sort.key, dirSelect.value === "desc" ? -1 : 1));

  // A deleted user's row goes (a `removed` message, or missing from a new snapshot).
  function remove(entry) {
    rows.delete(entry.id);
    const at = order.indexOf(entry);
    if (at >= 0) order.splice(at, 1);
    entry.tr.remove();
  }

  // -- filter and pages -------------------------------------------------------------------------

  const filter = { q: [], status: "", group: "" };
  let page = 0;
  let pages = 1;

  function matches(entry) {
    if (filter.group && entry.groupId !== filter.group) return false;
    if (filter.status === "phone") { if (!entry.onPhone) return false; }
    else if (filter.status === "held") { if (!entry.heldByUser) return false; }
    else if (filter.status && entry.status !== filter.status) return false;
    for (const term of filter.q) if (!entry.search.includes(term)) return false;
    return true;
  }

  // Which rows show: those matching the filter, `pageSize` of them on the current page.
  function render() {
    let matched = 0;
    const first = page * pageSize;
    for (const entry of order) {
      let show = false;
      if (matches(entry)) {
        show = matched >= first && matched < first + pageSize;
        matched += 1;
      }
      if (entry.tr.hidden === show) entry.tr.hidden = !show;
    }
    pages = Math.max(1, Math.ceil(matched / pageSize));
    if (page >= pages) {
      page = pages - 1;
      render();
      return;
    }
    const text = format(S.count, { shown: numbers.format(matched), total: numbers.format(order.length) });
    if (countEl.textContent !== text) countEl.textContent = text;
    const none = matched === 0 && order.length > 0;
    if (emptyEl.hidden === none) emptyEl.hidden = !none;
    pager.hidden = pages <= 1;
    pageText.textContent = format(S.page, { page: numbers.format(page + 1), pages: numbers.format(pages) });
    prevButton.disabled = page === 0;
    nextButton.disabled = page >= pages - 1;
  }

  function exportQuery() {
    const params = new URLSearchParams();
    if (search.value.trim()) params.set("q", search.value.trim());
    if (filter.status) params.set("status", filter.status);
    if (filter.group) params.set("group", filter.group);
    return params;
  }

  function saveState() {
    const params = exportQuery();
    const query = params.toString();
    exportLink.href = "/console/board.csv" + (query ? "?" + query : "");
    if (sort.key !== "name") params.set("sort", sort.key);
    if (sort.dir < 0) params.set("dir", "desc");
    if (page > 0) params.set("page", String(page + 1));
    const all = params.toString();
    history.replaceState(null, "", location.pathname + (all ? "?" + all : ""));
  }

  function readFilter() {
    filter.q = terms(search.value);
    filter.status = statusSelect.value;
    filter.group = groupSelect.value;
    page = 0;
    render();
    saveState();
    // Tell screen readers the result once typing pauses (not on every live change).
    clearTimeout(announce);
    announce = setTimeout(() => { countLive.textContent = countEl.textContent; }, 700);
  }

  function restoreState() {
    const params = new URLSearchParams(location.search);
    search.value = params.get("q") || "";
    for (const [select, key] of [[statusSelect, "status"], [groupSelect, "group"]]) {
      const value = params.get(key) || "";
      if ([...select.options].some((o) => o.value === value)) select.value = value;
    }
    filter.q = terms(search.value);
    filter.status = statusSelect.value;
    filter.group = groupSelect.value;
    sort.key = SORT_KEYS.includes(params.get("sort")) ? params.get("sort") : "name";
    sort.dir = params.get("dir") === "desc" ? -1 : 1;
    page = Math.max(0, (parseInt(params.get("page") || "1", 10) || 1) - 1);
    showSort();
    saveState();
  }

  function turn(by) {
    page = Math.min(pages - 1, Math.max(0, page + by));
    render();
    saveState();
    boardEl.scrollIntoView({ block: "start" });
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  search.addEventListener("input", readFilter);
  statusSelect.addEventListener("change", readFilter);
  groupSelect.addEventListener("change", readFilter);
  prevButton.addEventListener("click", () => turn(-1));
  nextButton.addEventListener("click", () => turn(1));

  // The filters stay at the top; the column headers right under them. A link focused
  // with Tab scrolls into view below both, never under them.
  const head = document.getElementById("board-head");
  const setFiltersHeight = () => {
    const root = document.documentElement.style;
    root.setProperty("--filters-h", form.offsetHeight + "px");
    root.scrollPaddingTop = form.offsetHeight + head.offsetHeight + 8 + "px";
  };
  new ResizeObserver(setFiltersHeight).observe(form);
  setFiltersHeight();

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
        entry.tr.hidden = true;
        rows.set(message.user, entry);
        fresh.push(entry);
      }
      patch(entry, message);
    }
    if (fresh.length > 50 || (fresh.length && order.length === 0)) {
      order.push(...fresh);
      resort = true;
    } else if (!resort) {
      for (const entry of fresh) insert(entry);
    } else {
      order.push(...fresh);
    }
    if (resort) resortAll();
    render();
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
        render();
      }
    } finally {
      fetching = false;
    }
  }

  // -- staleness: the stream down, or Teams not read ---------------------------------------------

  const stale = { stream: null, teams: null }; // since when (ms), or null

  function showStale() {
    boardEl.classList.toggle("stream-stale", stale.stream !== null);
    boardEl.classList.toggle("teams-stale", stale.teams !== null);
    let text = "";
    if (stale.stream !== null) {
      text = format(S.stale_stream, { time: clockTime.format(new Date(stale.stream)) });
    } else if (stale.teams !== null) {
      text = format(S.stale_teams, { time: clockTime.format(new Date(stale.teams)) });
    }
    if (staleText.textContent !== text) staleText.textContent = text;
    staleEl.hidden = !text;
  }

  function readHealth(health) {
    if (health.now) clockOffset = Date.parse(health.now) - Date.now();
    stale.teams = health.teams_stale ? Date.parse(health.teams_ok_at) : null; // wall-clock time
    showStale();
  }

  async function checkHealth() {
    try {
      const response = await fetch("/console/board/health.json", { credentials: "same-origin" });
      if (response.ok) readHealth(await response.json());
    } catch (error) {
      // The server is away: the stream notices and marks the board.
    }
  }

  if (data.health) readHealth(data.health);
  setInterval(checkHealth, 5000);
  // The status-since column moves on with the clock.
  setInterval(() => {
    const now = Date.now() + clockOffset;
    for (const entry of order) showSince(entry, now);
    if (sort.key === "since") { resortAll(); render(); }
  }, 30000);

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
        stale.stream = null;
        showStale();
        checkHealth();
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
      if (stale.stream === null && order.length) {
        stale.stream = Date.now();
        showStale();
      }
      const wait = Math.min(15000, 500 * 2 ** attempt);
      attempt += 1;
      setTimeout(connect, wait);
    };
  }

  restoreState();
  render();
  connect();
})();
