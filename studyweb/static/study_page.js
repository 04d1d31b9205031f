// What every task page does around its trials: read the session (retrying while the server
// cannot be reached), keep the completion code in this browser, know which trials are left, and
// end the study: every save sent, then the next page — or, with the server unreachable, the
// completion code on screen while the queue keeps trying.

/** GET `url` as JSON with the participant token; retries network and 5xx failures with backoff. */
export async function getJson(url, token, onRetry = () => {}) {
  for (let attempt = 0; ; attempt += 1) {
    let res = null;
    try {
      res = await fetch(url, { headers: { "X-Participant-Token": token }, credentials: "same-origin" });
    } catch { /* network down: retried below */ }
    if (res && res.ok) return res.json();
    if (res && res.status < 500 && res.status !== 408 && res.status !== 429) {
      throw new Error(`${url} refused (${res.status})`);
    }
    onRetry(attempt);
    await new Promise((r) => setTimeout(r, Math.min(15000, 500 * 2 ** attempt)));
  }
}

/** The participant's session (GET data-session-url); its completion code is kept in localStorage. */
export async function getSession(root, token, onRetry) {
  const session = await getJson(root.dataset.sessionUrl, token, onRetry);
  try {
    localStorage.setItem(`gazelab.code.${token}`, JSON.stringify([session.completion_code, session.completion_url]));
  } catch { /* private mode: the code is still shown from memory */ }
  return session;
}

/** The session's trials still to run: not done, and no answer of theirs waiting in the queue. */
export function unanswered(session, saver) {
  const queued = new Set(saver.items.map((item) => item.url));
  return session.trials.filter((t) => t.status !== "done" && !queued.has(t.answer_url ?? t.save_url));
}

/**
 * The end of the trials: send every save, then go to the page's next URL (data-next-url). When
 * the server cannot be reached the completion code is shown anyway (from `session`), and the
 * queue keeps sending while the tab is open.
 */
export async function finishStudy(root, saver, session, say) {
  say("Saving your answers…");
  if (await saver.flush(20000)) {
    window.location.assign(root.dataset.nextUrl);
    return;
  }
  say("We could not reach the server. Your answers are kept in this browser and sent when it is back.");
  const end = root.querySelector(".end");
  end.hidden = false;
  end.querySelector(".code").textContent = session.completion_code || "";
  const link = end.querySelector("a.return");
  if (session.completion_url) link.href = session.completion_url; else link.hidden = true;
  saver.flush(10 * 60 * 1000).then((ok) => { if (ok) say("All your answers have been sent. Thank you!"); });
}
