// The CodeCharts task page: flushes saves left from an earlier visit, asks the server where the
// participant is, runs the tutorial, re-reads the session to learn whether it was passed, then
// runs the main trials. Each trial waits until the window holds the image with codes of the
// minimum height (codecharts.js `fitStage`: the image area shrinks to the window down to that).
// After each tutorial trial the next screen says how it went ("the code at the red dot was K47").
import { SaveQueue } from "./saver.js";
import { fitStage, prepareTrial, runTrial } from "./codecharts.js";
import { finishStudy, getSession as readSession, unanswered } from "./study_page.js";
import { pacer } from "./pacing.js";

const MARGIN_W = 24; // the page's padding, both sides
const MARGIN_H = 64; // the padding and the status line above the image area
const TUTORIAL_HELP = "Look at the cross, then look at the picture wherever you like. A grid of codes " +
  "flashes up: type the code you were looking at when it appeared. If a red dot appears instead of a " +
  "picture, look at the dot.";
const MAIN_HELP = "Look at the cross, then at the picture wherever you like; then type the code you saw last.";
const FEEDBACK_WAIT_MS = 5000; // how long a tutorial answer may take to save before its feedback is skipped

const root = document.getElementById("task");
const token = root.dataset.token;
const saver = new SaveQueue(token);
const statusEl = root.querySelector(".status");
const stage = root.querySelector(".cc-stage");
const ready = stage.querySelector(".cc-ready");
const startBtn = ready.querySelector(".start");
const tooSmall = root.querySelector(".cc-toosmall");
const feedbackEl = ready.insertBefore(Object.assign(document.createElement("p"), { className: "cc-feedback" }),
  ready.firstChild);
window.gazelabSaver = saver; // for tests and debugging
tooSmall.querySelector(".cc-fullscreen").addEventListener("click", () => {
  const el = document.documentElement;
  if (el.requestFullscreen) el.requestFullscreen().catch(() => say("Full screen is not available; please make the window larger."));
});

function say(text) {
  statusEl.textContent = text;
}

const retrying = () => say("Connection lost, retrying…");

/** Whether the window holds the prepared trial's image area (drawn to fit it when it does): `fitStage`. */
const fits = () => fitStage(stage, window.innerWidth - MARGIN_W, window.innerHeight - MARGIN_H);

/** Wait until the window holds the prepared trial's image area, prompting for a larger window. */
function windowHolds() {
  const fit = fits();
  if (fit.scale) {
    tooSmall.hidden = true;
    return Promise.resolve();
  }
  stage.hidden = true;
  tooSmall.hidden = false;
  tooSmall.querySelector(".cc-size").textContent = `${fit.need.w + MARGIN_W} × ${fit.need.h + MARGIN_H}`;
  return new Promise((resolve) => {
    const check = () => {
      if (!fits().scale) return;
      window.removeEventListener("resize", check);
      tooSmall.hidden = true;
      resolve();
    };
    window.addEventListener("resize", check);
  });
}

/** The Start button inside the image area; resolves when pressed while the window is large enough. */
async function waitForStart(trial, label, help, feedback = "") {
  for (;;) {
    say(label);
    await windowHolds();
    stage.hidden = false;
    stage.dataset.screen = "ready";
    feedbackEl.textContent = feedback;
    feedbackEl.hidden = !feedback;
    ready.querySelector(".cc-help").textContent = help;
    ready.hidden = false;
    startBtn.focus();
    let onResize = null;
    const pressed = await new Promise((resolve) => {
      onResize = () => resolve(false); // the window changed: check its size again
      startBtn.onclick = () => resolve(true);
      window.addEventListener("resize", onResize);
    });
    startBtn.onclick = null;
    window.removeEventListener("resize", onResize);
    if (pressed && fits().scale) {
      ready.hidden = true;
      return;
    }
  }
}

/**
 * Progress labels for the trials of `session`: "Tutorial i of n", "Image N of M" counting only
 * main image trials, and "N of M images done" for sentinels. A finished trial's kind is not in
 * the session, so kinds seen earlier are kept in this browser.
 */
function progressLabels(session) {
  const key = `gazelab.cc.kinds.${token}`;
  let kinds = {};
  try { kinds = JSON.parse(localStorage.getItem(key) || "{}") || {}; } catch { /* storage blocked */ }
  for (const t of session.trials) if (t.kind) kinds[t.id] = t.kind;
  try { localStorage.setItem(key, JSON.stringify(kinds)); } catch { /* as above */ }
  const tutorial = session.trials.filter((t) => t.is_practice);
  const main = session.trials.filter((t) => !t.is_practice);
  const labels = new Map();
  tutorial.forEach((t, i) => labels.set(t.id, `Tutorial ${i + 1} of ${tutorial.length}`));
  if (main.some((t) => !kinds[t.id])) {
    main.forEach((t, i) => labels.set(t.id, `Trial ${i + 1} of ${main.length}`));
    return labels;
  }
  const total = main.filter((t) => kinds[t.id] === "image").length;
  let n = 0;
  for (const t of main) {
    if (kinds[t.id] === "image") n += 1;
    labels.set(t.id, kinds[t.id] === "image" ? `Image ${n} of ${total}` : `${n} of ${total} images done`);
  }
  return labels;
}

/** Feedback on a tutorial answer, in words (`studyweb.tasks.codecharts.tutorial_feedback`'s JSON). */
export function feedbackText(f) {
  const typed = f.code ?? "your answer";
  if (f.kind === "sentinel") {
    if (f.correct) return f.code === f.expected ? `Right: the code at the red dot was ${f.expected}.`
      : `Right: ${typed} was next to the red dot (the code at the dot was ${f.expected}).`;
    return `Not quite: the code at the red dot was ${f.expected}, and you typed ${typed}. Keep looking at the dot ` +
      "until the codes appear, then type the code closest to it.";
  }
  if (f.valid) return `Good: ${typed} was one of the codes on the screen.`;
  return `${typed} was not one of the codes on the screen. Type the code you see where you are looking when ` +
    "the codes appear.";
}

/** How the tutorial trial's answer went, once it is saved; "" when that takes too long. */
async function tutorialFeedback(trial) {
  if (!(await saver.flush(FEEDBACK_WAIT_MS))) return "";
  const url = new URL(`feedback/${trial.id}`, new URL(root.dataset.nextUrl, window.location.href));
  try {
    const res = await fetch(url, { headers: { "X-Participant-Token": token }, credentials: "same-origin" });
    return res.ok ? feedbackText(await res.json()) : "";
  } catch {
    return ""; // the network: the tutorial goes on without it
  }
}

async function runOne(trial, label, feedback = "") {
  stage.hidden = true;
  say(`${label}: loading…`);
  const chart = await prepareTrial(stage, trial, token, retrying);
  window.gazelabLastChart = chart; // what the chart screen draws (display px), for tests
  window.gazelabLastTrial = trial;
  await waitForStart(trial, label, trial.is_practice ? TUTORIAL_HELP : MAIN_HELP, feedback);
  const events = [];
  const onResize = () => events.push({ type: "resize", data: { w: window.innerWidth, h: window.innerHeight } });
  const onBlur = () => events.push({ type: "focus_lost" });
  window.addEventListener("resize", onResize);
  window.addEventListener("blur", onBlur);
  try {
    const answer = await runTrial(stage, trial);
    saver.enqueue(trial.answer_url, { code: answer.code, rt_ms: answer.rt_ms, events: [...answer.events, ...events] });
  } finally {
    window.removeEventListener("resize", onResize);
    window.removeEventListener("blur", onBlur);
  }
  stage.dataset.screen = "done";
}

async function saveAll() {
  say("Saving your answers…");
  while (!(await saver.flush(20000))) say("We could not reach the server yet; your answers are kept in this browser. Retrying…");
}

async function main() {
  say("Loading…");
  await saver.flush(8000);
  let session = await getSession();
  // The tutorial first. The server applies its gate on the last tutorial answer, so only the
  // session read after every answer has arrived says whether the main trials follow; a tutorial
  // answer the server refused leaves its trial open, and it is run again.
  let feedback = "";
  while (session.trials.some((t) => t.is_practice && t.status !== "done")) {
    const labels = progressLabels(session);
    for (const trial of unanswered(session, saver).filter((t) => t.is_practice)) {
      await runOne(trial, labels.get(trial.id), feedback);
      stage.hidden = true;
      say(`${labels.get(trial.id)}: saving…`);
      feedback = await tutorialFeedback(trial);
      window.gazelabLastFeedback = feedback; // for tests
    }
    stage.hidden = true;
    await saveAll();
    session = await getSession();
  }
  if (session.status !== "practice" && session.status !== "trials") {
    say(`${feedback ? `${feedback} ` : ""}Thank you for taking part! The study ends here for you; you will now be ` +
      "taken to the last page.");
    await new Promise((r) => setTimeout(r, 2500 + (feedback ? 2500 : 0)));
    window.location.assign(root.dataset.nextUrl);
    return;
  }
  const labels = progressLabels(session);
  const paceBefore = pacer(); // the design's block screens and grey inter-trial interval (Gatys: 2 s)
  for (const trial of unanswered(session, saver)) {
    await paceBefore(trial);
    await runOne(trial, labels.get(trial.id), feedback);
    feedback = ""; // the last tutorial answer's, shown before the first main trial only
  }
  stage.hidden = true;
  await finishStudy(root, saver, session, say);
}

const getSession = () => readSession(root, token, retrying);

main().catch((err) => say(`Something went wrong: ${err.message}. Please reload the page.`));
