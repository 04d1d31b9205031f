// The questionnaire task page: flushes saves left from an earlier visit, asks the server where the
// participant is, and runs the unanswered trials one after another. Each answer goes through the
// save queue; the page waits a few seconds for the server's word on it, so an answer refused for
// its content (422) is asked again with the server's message, while an answer held up by the
// network stays queued and the participant goes on.
import { SaveQueue } from "./saver.js";
import { finishStudy, getSession, unanswered } from "./study_page.js";
import { runTrial } from "./questionnaire.js";
import { pacer } from "./pacing.js";

const VERDICT_WAIT_MS = 4000; // how long to wait for the server's answer before moving on

const root = document.getElementById("task");
const token = root.dataset.token;
const saver = new SaveQueue(token);
const statusEl = root.querySelector(".status");
const stage = root.querySelector(".qn-stage");
window.gazelabSaver = saver; // for tests and debugging

function say(text) {
  statusEl.textContent = text;
}

const retrying = () => say("Connection lost, retrying…");

/** Run `trial` until it is answered and not refused; the answer is queued when this resolves. */
async function runOne(trial, heading) {
  let notice = "";
  for (;;) {
    window.gazelabLastTrial = trial;
    const answer = await runTrial(stage, trial, { heading, notice, onRetry: retrying });
    const key = saver.enqueue(trial.answer_url, answer);
    stage.dataset.state = "saving";
    const slow = setTimeout(() => say("Saving your answer…"), 500);
    const through = await saver.flush(VERDICT_WAIT_MS);
    clearTimeout(slow);
    say("");
    if (!through) return; // not through yet: the queue keeps trying while the participant goes on
    const refusal = saver.rejected.find((item) => item.body.idempotency_key === key);
    // A 409 is no answer to fix: the trial was answered meanwhile (another tab) or the
    // participation has ended, so asking again would only meet the same 409.
    if (!refusal || refusal.status === 409) return;
    notice = `Your answer could not be saved: ${refusalMessage(refusal)} Please answer again.`;
  }
}

async function main() {
  say("Loading…");
  await saver.flush(8000);
  const session = await getSession(root, token, retrying);
  const total = session.trials.filter((t) => !t.is_practice).length;
  say("");
  const paceBefore = pacer(); // the design's breaks, block screens and grey interval
  for (const trial of unanswered(session, saver)) {
    await paceBefore(trial);
    // The progress line stays on screen during the trial, so participants see how far they are.
    await runOne(trial, `Question ${trial.number} of ${total}`);
    // A failed catch trial can end the study (screened out, decided by the server): leave at once
    // instead of asking questions the server would refuse.
    if ((trial.questions || []).some((q) => q.id === "catch") && (await saver.flush(VERDICT_WAIT_MS))) {
      const now = await getSession(root, token, retrying);
      if (now.status !== "trials" && now.status !== "practice") break;
    }
  }
  stage.hidden = true;
  await finishStudy(root, saver, session, say);
}

/** The server's message in a refused save ({error, message} JSON), or a plain sentence. */
function refusalMessage(refusal) {
  try {
    const message = JSON.parse(refusal.why).message;
    if (message) return /[.!?]$/.test(message) ? message : `${message}.`;
  } catch { /* not JSON: a proxy's page */ }
  return `the server refused it (${refusal.status}).`;
}

main().catch((err) => say(`Something went wrong: ${err.message}. Please reload the page.`));
