// Sync health: refresh the figures every five seconds (not while the user is inside them).
"use strict";
(function () {
  const live = document.getElementById("sync-live");
  if (!live || live.dataset.refresh !== "on") return;
  async function refresh() {
    if (document.hidden || live.contains(document.activeElement)) return;
    try {
      const response = await fetch("/console/sync?partial=1", { credentials: "same-origin" });
      if (response.status === 401) { location.href = "/console/login?next=%2Fconsole%2Fsync"; return; }
      if (response.ok) live.innerHTML = await response.text();
    } catch (_) { /* the next round tries again */ }
  }
  setInterval(refresh, 5000);
})();
