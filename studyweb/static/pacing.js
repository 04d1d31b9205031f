// The pauses a design asks for between trials (studyweb/workload.py, each trial's `pace`): a
// break or between-blocks screen that waits for Continue, then a mid-grey full-window screen for
// the inter-trial interval (Gatys et al.'s 2-s blank grey screen). The grey interval comes after
// a trial or a pause shown on this page, so a page (re)loaded mid-study starts without one.

const GREY = "rgb(128, 128, 128)";

/** A function to await before each trial: it shows the trial's pauses, if it has any. */
export function pacer() {
  let after = false; // a trial or a pause was shown on this page
  return async function paceBefore(trial) {
    const pace = trial.pace || {};
    if (pace.screen) {
      await pauseScreen(pace.screen);
      after = true;
    }
    if (pace.iti_ms && after) await greyScreen(pace.iti_ms);
    after = true;
  };
}

/** A full-window layer over the page, marked data-pace="break|block|iti" (for tests). */
function layer(kind, background) {
  const el = document.createElement("div");
  el.className = "pace-screen";
  el.dataset.pace = kind;
  Object.assign(el.style, {
    position: "fixed", inset: "0", zIndex: "1000", display: "flex", flexDirection: "column", alignItems: "center",
    justifyContent: "center", gap: "1rem", padding: "1rem", boxSizing: "border-box", overflow: "auto", background,
  });
  document.body.append(el);
  return el;
}

/** The screen {kind, title, text} until its Continue button is pressed (Enter presses it too). */
function pauseScreen(screen) {
  const el = layer(screen.kind, getComputedStyle(document.body).backgroundColor || "#fff");
  const box = document.createElement("div");
  Object.assign(box.style, { maxWidth: "36rem", textAlign: "left" });
  const title = document.createElement("h2");
  title.textContent = screen.title;
  box.append(title);
  for (const paragraph of String(screen.text || "").split(/\n\s*\n/)) {
    const p = document.createElement("p");
    p.textContent = paragraph; // the design's words as text, never as markup
    box.append(p);
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "pace-continue";
  button.textContent = "Continue";
  el.append(box, button);
  button.focus();
  return new Promise((resolve) => {
    button.addEventListener("click", () => {
      el.remove();
      resolve();
    }, { once: true });
  });
}

/** The blank mid-grey window for `ms` milliseconds. */
function greyScreen(ms) {
  const el = layer("iti", GREY);
  el.style.cursor = "none";
  return new Promise((resolve) => {
    setTimeout(() => {
      el.remove();
      resolve();
    }, ms);
  });
}
