// My Profiles: reorder the own profiles by drag and drop (the buttons do the same without a mouse).
"use strict";
(function () {
  const list = document.getElementById("profile-list");
  if (!list) return;
  const own = () => [...list.querySelectorAll("li[data-own]")];
  let dragged = null;
  for (const item of own()) {
    item.draggable = true;
    item.addEventListener("dragstart", (event) => {
      dragged = item;
      item.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", item.dataset.name);
    });
    item.addEventListener("dragend", () => {
      item.classList.remove("dragging");
      list.querySelectorAll(".drop-target").forEach((el) => el.classList.remove("drop-target"));
    });
    item.addEventListener("dragover", (event) => {
      if (!dragged || dragged === item) return;
      event.preventDefault();
      item.classList.add("drop-target");
    });
    item.addEventListener("dragleave", () => item.classList.remove("drop-target"));
    item.addEventListener("drop", async (event) => {
      event.preventDefault();
      item.classList.remove("drop-target");
      if (!dragged || dragged === item) return;
      list.insertBefore(dragged, item);
      const body = new URLSearchParams();
      for (const li of own()) body.append("names", li.dataset.name);
      const response = await fetch(list.dataset.orderUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": window.pbCsrf(), "Accept": "application/json" },
        body,
      });
      if (!response.ok) console.warn("reorder refused", response.status, await response.text());
      location.reload();
    });
  }
})();
