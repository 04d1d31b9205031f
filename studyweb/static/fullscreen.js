// A design's device.fullscreen on the task pages (base.html includes this where it applies): the
// trials run in full screen. A prompt covers the page until the participant goes full screen (a
// browser allows it only on a click), and again whenever they leave it, each time with an event
// 'fullscreen_exit'. A browser that cannot go full screen, or refuses, is not held back (the
// device check before consent already turns away those that cannot).
import { newKey } from "./saver.js";

const gate = document.getElementById("fullscreen-gate");
const text = gate.querySelector(".fullscreen-text");
const started = performance.now();
let exits = 0;

/** Record a browser event (best effort: an event lost with the network is no answer lost). */
function send(type, data) {
  fetch(gate.dataset.eventsUrl, {
    method: "POST", credentials: "same-origin", keepalive: true,
    headers: { "Content-Type": "application/json", "X-Participant-Token": gate.dataset.token },
    body: JSON.stringify({ idempotency_key: newKey(),
                           events: [{ type, t_ms: Math.round(performance.now() - started), data }] }),
  }).catch(() => {});
}

function size() {
  return { w: window.innerWidth, h: window.innerHeight };
}

if (document.fullscreenEnabled) {
  gate.hidden = Boolean(document.fullscreenElement);
  document.addEventListener("fullscreenchange", () => {
    const inside = Boolean(document.fullscreenElement);
    if (!inside) {
      exits += 1;
      text.textContent = "You left full screen. Please go back to full screen to carry on with the study.";
    }
    send(inside ? "fullscreen_enter" : "fullscreen_exit", { ...size(), exits });
    gate.hidden = inside;
  });
  gate.querySelector("button").addEventListener("click", () => {
    document.documentElement.requestFullscreen().catch((err) => {
      send("fullscreen_refused", { ...size(), message: String(err && err.message).slice(0, 200) });
      gate.hidden = true; // never a dead end: the study goes on in the window
    });
  });
} else {
  send("fullscreen_unavailable", size());
}
