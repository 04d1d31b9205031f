// The save queue: every piece of participant data goes through here so none is lost.
// Each item gets a client-generated idempotency key when it is queued; items live in
// localStorage until the server acknowledges them, and are retried in order with
// exponential backoff across network drops and page reloads. A save the server refuses for
// its content (4xx) is never resent as it was: it is recorded aside, and the queue moves on,
// so one bad save never blocks the participant's later ones. When the refused save carried
// text or events, the same save is sent once more without them (under a new key: other
// content), and a refused trial end is sent once more without its clicks, so the trial still
// ends and the study goes on to the completion code.

const MAX_DELAY_MS = 30000;
// Refusals that say something in the body was wrong (not who is asking, nor the trial's state).
const CONTENT_REFUSALS = new Set([400, 413, 415, 422]);

/** A random UUID; crypto.randomUUID exists only in secure contexts (https, localhost). */
export function newKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class SaveQueue {
  /**
   * @param {string} token participant token, sent as X-Participant-Token
   * @param {object} [opts] baseDelayMs (first retry delay), storage (localStorage-like)
   */
  constructor(token, opts = {}) {
    this.token = token;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.storage = opts.storage ?? window.localStorage;
    this.key = `gazelab.saves.${token}`;
    this.rejectedKey = `gazelab.rejected.${token}`;
    this.items = this._load(this.key);
    this.attempts = 0;
    this.timer = null;
    this.sending = false;
    this.waiters = [];
    window.addEventListener("online", () => this.kick(true));
  }

  /** Queue `body` for POST to `url`; returns the idempotency key it was given. */
  enqueue(url, body) {
    const item = { url, body: { ...body, idempotency_key: body.idempotency_key ?? newKey() } };
    this.items.push(item);
    this._persist();
    this.kick(true);
    return item.body.idempotency_key;
  }

  get pending() {
    return this.items.length;
  }

  /** Resolves true once the queue is empty, false if `timeoutMs` passes first. */
  flush(timeoutMs = 15000) {
    if (this.items.length === 0) return Promise.resolve(true);
    this.kick(true);
    return new Promise((resolve) => {
      const waiter = { resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(this.items.length === 0);
      }, timeoutMs);
    });
  }

  /** Start sending now (`now`) or keep the scheduled retry. */
  kick(now = false) {
    if (this.sending) return;
    if (now && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      this.attempts = 0;
    }
    if (!this.timer) this._sendNext();
  }

  async _sendNext() {
    this.timer = null;
    if (this.items.length === 0) {
      this.waiters.splice(0).forEach((w) => w.resolve(true));
      return;
    }
    this.sending = true;
    const item = this.items[0];
    let retry = false;
    let smaller = null; // what is still worth sending of a refused item
    try {
      const res = await fetch(item.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Participant-Token": this.token },
        body: JSON.stringify(item.body),
        credentials: "same-origin",
        keepalive: JSON.stringify(item.body).length < 60000,
      });
      if (res.ok) {
        this.attempts = 0;
      } else if (res.status >= 500 || res.status === 408 || res.status === 429) {
        retry = true;
      } else {
        // The server refused this item for good: keep it aside, never resend it as it was.
        const why = await res.text().catch(() => "");
        this._recordRefusal(item, res.status, why);
        if (CONTENT_REFUSALS.has(res.status)) smaller = reducedSave(item);
      }
    } catch (err) {
      retry = true; // network down, server restarting
    }
    this.sending = false;
    if (retry) {
      this.attempts += 1;
      const delay = Math.min(MAX_DELAY_MS, this.baseDelayMs * 2 ** (this.attempts - 1));
      this.timer = setTimeout(() => this._sendNext(), delay * (0.75 + Math.random() / 2));
      return;
    }
    if (smaller) this.items[0] = smaller;
    else this.items.shift();
    this._persist();
    this._sendNext();
  }

  /** The items the server refused (most recent last, at most 50), kept in localStorage. */
  get rejected() {
    return this._load(this.rejectedKey);
  }

  _recordRefusal(item, status, why) {
    const rejected = this._load(this.rejectedKey);
    rejected.push({ ...item, status, why: why.slice(0, 500) });
    try {
      this.storage.setItem(this.rejectedKey, JSON.stringify(rejected.slice(-50)));
    } catch { /* storage full: the console line below is all that is left */ }
    console.warn("save refused", status, why);
  }

  _load(key) {
    try {
      const v = JSON.parse(this.storage.getItem(key) || "[]");
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  _persist() {
    try {
      this.storage.setItem(this.key, JSON.stringify(this.items));
    } catch (err) {
      console.warn("localStorage full; keeping saves in memory only", err);
    }
  }
}

/**
 * What is still worth sending of a refused save, or null: first the save without its free text
 * and events; then, for a trial end, the end alone (no clicks). A new idempotency key each time,
 * as the content differs.
 */
export function reducedSave(item) {
  const body = item.body;
  const stage = item.reduced ?? 0;
  const hasExtras = body.response_text != null || (body.events && body.events.length > 0);
  if (stage < 1 && hasExtras) {
    const { response_text: _text, ...rest } = body;
    return { ...item, reduced: 1, body: { ...rest, events: [], idempotency_key: newKey() } };
  }
  if (stage < 2 && body.done && body.clicks && body.clicks.length > 0) {
    const { response_text: _text, ...rest } = body;
    return { ...item, reduced: 2, body: { ...rest, events: [], clicks: [], idempotency_key: newKey() } };
  }
  return null;
}
