// connector-hub console: optional enhancements. Every page works without this script.
// - Copy buttons (hidden without JavaScript) copy the text of the element they name.
// - An element with data-live="<url>" is refreshed from that URL (a server-rendered fragment) every 10 s.
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
    };
    setInterval(() => { refresh().catch(() => {}); }, 10000);
  }
});
