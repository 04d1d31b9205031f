// The task page: flushes any saves left from an earlier visit, asks the server where the
// participant is, and runs the remaining trials (practice first) one after another.
import { SaveQueue } from "./saver.js";
import { runTrial, practiceImages } from "./bubbleview.js";
import { finishStudy, getSession } from "./study_page.js";
import { pacer } from "./pacing.js";

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

async function main() {
  say("Loading…");
  await saver.flush(8000);
  const session = await getSession(root, token, () => say("Connection lost, retrying…"));
  // Not done yet: a trial with saves still queued is resumed (its time and clicks carry on).
  const todo = session.trials.filter((t) => t.status !== "done");
  const total = session.trials.filter((t) => !t.is_practice).length;
  const paceBefore = pacer(); // the design's breaks, block screens and grey interval
  for (const trial of todo) {
    await paceBefore(trial);
    // The heading stays on screen during the trial, so participants see how far they are.
    const heading = trial.is_practice ? "Practice trial" : `Image ${trial.number} of ${total}`;
    const seconds = trial.time_limit_ms ? ` for ${+(trial.time_limit_ms / 1000).toFixed(1)} s` : "";
    const task = trial.mode === "describe"
      ? `Click on the blurry image${seconds} to see it sharply where you click, then describe it in the box below and press Done.`
      : trial.is_practice ? "Click on the blurry image to see it sharply where you click." : "Click where you want to look.";
    await waitForStart(`${heading}. ${task}`);
    const images = trial.blurred_url ? null : practiceImages(trial.blur_sigma);
    await runTrial(stage, trial, saver, images);
  }
  stage.hidden = true;
  await finishStudy(root, saver, session, say);
}

main().catch((err) => say(`Something went wrong: ${err.message}. Please reload the page.`));
