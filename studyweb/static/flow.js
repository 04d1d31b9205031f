// The task page: flushes any saves left from an earlier visit, asks the server where the
// participant is, and runs the remaining trials (practice first) one after another.
import { SaveQueue } from "./saver.js";
import { runTrial, practiceImages } from "./bubbleview.js";

const root = document.getElementById("task");
const token = root.dataset.token;
const saver = new SaveQueue(token);
const statusEl = root.querySelector(".status");
const stage = root.querySelector(".stage");
const startBtn = root.querySelector(".start");
window.gazelabSaver = saver; // for tests and debugging

function say(text) {
  statusEl.textContent = text;
}

async function getSession() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const res = await fetch(root.dataset.sessionUrl, {
        headers: { "X-Participant-Token": token },
        credentials: "same-origin",
      });
      if (res.ok) return await res.json();
      if (res.status < 500) throw new Error(`session refused (${res.status})`);
    } catch (err) {
      if (String(err.message).startsWith("session refused")) throw err;
    }
    say("Connection lost, retrying…");
    await new Promise((r) => setTimeout(r, Math.min(15000, 500 * 2 ** attempt)));
  }
}

function waitForStart(label) {
  stage.hidden = true;
  startBtn.hidden = false;
  say(label);
  return new Promise((resolve) => {
    startBtn.onclick = () => {
      startBtn.hidden = true;
      startBtn.onclick = null;
      stage.hidden = false;
      resolve();
    };
  });
}

function showCode(code, url) {
  stage.hidden = true;
  const end = root.querySelector(".end");
  end.hidden = false;
  end.querySelector(".code").textContent = code || "";
  const link = end.querySelector("a.return");
  if (url) link.href = url; else link.hidden = true;
}

async function main() {
  say("Loading…");
  await saver.flush(8000);
  const session = await getSession();
  try {
    localStorage.setItem(`gazelab.code.${token}`, JSON.stringify([session.completion_code, session.completion_url]));
  } catch { /* private mode: the code is still shown from memory */ }
  const todo = session.trials.filter((t) => t.status !== "done");
  const total = session.trials.filter((t) => !t.is_practice).length;
  for (const trial of todo) {
    // The heading stays on screen during the trial, so participants see how far they are.
    const heading = trial.is_practice ? "Practice trial" : `Image ${trial.number} of ${total}`;
    const task = trial.mode === "describe"
      ? "Click on the blurry image to see it sharply where you click, then describe it in the box below and press Done."
      : trial.is_practice ? "Click on the blurry image to see it sharply where you click." : "Click where you want to look.";
    await waitForStart(`${heading}. ${task}`);
    const images = trial.blurred_url ? null : practiceImages(trial.blur_sigma);
    await runTrial(stage, trial, saver, images);
  }
  stage.hidden = true;
  say("Saving your answers…");
  if (await saver.flush(20000)) {
    window.location.assign(root.dataset.nextUrl);
    return;
  }
  // The server is unreachable: show the code anyway; the queue keeps trying while the tab is open.
  say("We could not reach the server. Your answers are kept in this browser and sent when it is back.");
  showCode(session.completion_code, session.completion_url);
  saver.flush(10 * 60 * 1000).then((ok) => { if (ok) say("All your answers have been sent. Thank you!"); });
}

main().catch((err) => say(`Something went wrong: ${err.message}. Please reload the page.`));
