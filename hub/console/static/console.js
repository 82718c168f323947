// connector-hub console: optional enhancements. Every page works without this script.
// - Copy buttons (hidden without JavaScript) copy the text of the element they name.
// - An element with data-live="<url>" is refreshed from that URL (a server-rendered fragment) every
//   data-every ms (default 10 s), until the fragment holds an element marked data-final.
// - A table body with data-newer="<url>" gets the rows stored after its data-after sequence, every 5 s.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = source.value !== undefined ? source.value : source.textContent;
      await navigator.clipboard.writeText(text.trim());
      button.textContent = "Copied";
    });
  }
  for (const region of document.querySelectorAll("[data-live]")) {
    const refresh = async () => {
      const response = await fetch(region.dataset.live, { credentials: "same-origin" });
      if (!response.ok || response.redirected) return;
      const fragment = new DOMParser().parseFromString(await response.text(), "text/html");
      region.replaceChildren(...fragment.body.childNodes);
      if (region.querySelector("[data-final]")) clearInterval(timer);
    };
    const timer = setInterval(() => { refresh().catch(() => {}); }, Number(region.dataset.every) || 10000);
  }
  for (const rows of document.querySelectorAll("tbody[data-newer]")) {
    const announce = document.getElementById(rows.dataset.announce);
    const poll = async () => {
      const url = new URL(rows.dataset.newer, location.href);
      url.searchParams.set("after", rows.dataset.after);
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok || response.redirected) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("tbody[data-after]");
      if (!fresh || fresh.rows.length === 0) return;
      rows.dataset.after = fresh.dataset.after;
      for (const empty of rows.querySelectorAll("tr[data-empty]")) empty.remove();
      rows.prepend(...fresh.rows);
      announce.textContent = `${fresh.dataset.count} new event(s) added at the top.`;
    };
    setInterval(() => { poll().catch(() => {}); }, 5000);
  }
});
