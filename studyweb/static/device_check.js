// The device check before consent (the rule and its reasons: studyweb/screening.py). Measures the
// screen, the window and the pointer; shows the consent form when the browser meets the
// experiment's rule, or else what is missing, with "Check again" and a way to end the study
// (screened out). Both forms carry the measurements, taken again as they are sent; the server
// checks them again and records them.

const MOBILE_UA = /Mobi|Android|iPhone|iPad|iPod|Tablet|Silk|Kindle|PlayBook|BlackBerry|Opera Mini|IEMobile/i;
const TABLET_SHORT_SIDE = 768; // CSS px: a touch-only screen with a shorter short side is a phone or tablet

/** The browser as the check sees it: sizes in CSS px, devicePixelRatio, pointer, full screen. */
export function measure() {
  return {
    screen_w: screen.width, screen_h: screen.height,
    window_w: window.innerWidth, window_h: window.innerHeight,
    dpr: window.devicePixelRatio || 1,
    touch_points: navigator.maxTouchPoints || 0,
    fine_pointer: window.matchMedia("(any-pointer: fine)").matches,
    fullscreen_ok: Boolean(document.fullscreenEnabled),
  };
}

/** Whether the browser is a phone or tablet (studyweb.screening.is_phone: the same rule). */
export function isPhone(userAgent, m) {
  if (MOBILE_UA.test(userAgent)) return true;
  if (userAgent.includes("Macintosh") && m.touch_points > 1) return true; // iPadOS asks for the desktop site
  return m.touch_points > 0 && !m.fine_pointer && Math.min(m.screen_w, m.screen_h) > 0 &&
    Math.min(m.screen_w, m.screen_h) < TABLET_SHORT_SIDE;
}

/** What keeps the browser from the study: [{problem, advice, fixable}]; [] when it passes. */
export function problems(rule, m, userAgent) {
  const phone = isPhone(userAgent, m);
  if (phone && rule.phones === "exclude") {
    return [{ problem: "This study needs a computer (a laptop or desktop): it cannot be done on a phone or tablet.",
              advice: "Please open the study link on a computer.", fixable: false }];
  }
  const out = [];
  const [w, h] = phone ? rule.phone_window : rule.min_window;
  if (m.window_w < w || m.window_h < h) {
    out.push({
      problem: `Your browser window is ${m.window_w} × ${m.window_h} pixels; this study needs at least ${w} × ${h}.`,
      advice: phone ? "Hold your phone or tablet upright, then press Check again."
        : "Make the window larger (maximise it), or zoom out (Ctrl and −; ⌘ and − on a Mac), then press Check again.",
      fixable: true,
    });
  }
  if (rule.fullscreen && !m.fullscreen_ok) {
    out.push({ problem: "This study runs in full screen, which this browser does not allow here.",
               advice: "Please open the study link in a recent Chrome, Edge, Firefox or Safari.", fixable: false });
  }
  return out;
}

/** Write `m` into a form's hidden fields of the same names (booleans as 1 or 0). */
function fill(form, m) {
  for (const [name, value] of Object.entries(m)) {
    const input = form.elements.namedItem(name);
    if (input) input.value = typeof value === "boolean" ? (value ? "1" : "0") : String(value);
  }
}

function main() {
  const section = document.getElementById("device-check");
  const rule = JSON.parse(section.dataset.rule);
  const consent = document.getElementById("consent");
  const refusal = section.querySelector(".device-refusal");
  const againBtn = document.getElementById("device-again");
  const agent = navigator.userAgent;

  /** Show the consent (the browser passes) or what is missing; true when it passes. */
  function check() {
    const m = measure();
    const found = problems(rule, m, agent);
    for (const form of document.querySelectorAll("form.device-form")) fill(form, m);
    section.querySelector(".device-checking").hidden = true;
    if (found.length === 0) {
      section.hidden = true;
      consent.hidden = false;
      return true;
    }
    consent.hidden = true;
    section.hidden = false;
    refusal.hidden = false;
    const list = section.querySelector(".device-problems");
    list.replaceChildren(...found.map((f) => Object.assign(document.createElement("li"), { textContent: f.problem })));
    section.querySelector(".device-advice").textContent = found.map((f) => f.advice).join(" ");
    againBtn.hidden = !found.some((f) => f.fixable);
    return false;
  }

  againBtn.addEventListener("click", check);
  let pending = null;
  window.addEventListener("resize", () => { // the window grew (or shrank): check again once it settles
    clearTimeout(pending);
    pending = setTimeout(check, 200);
  });
  // "I agree" sends the measurements as they are then; a window made too small since is checked
  // here rather than turned into a screen-out by the server.
  consent.querySelector("form").addEventListener("submit", (event) => {
    if (event.submitter && event.submitter.value === "yes" && !check()) event.preventDefault();
  });
  section.querySelector("form").addEventListener("submit", (event) => fill(event.target, measure()));
  check();
}

if (document.getElementById("device-check")) main();
