// The save queue: every piece of participant data goes through here so none is lost.
// Each item gets a client-generated idempotency key when it is queued; items live in
// localStorage until the server acknowledges them, and are retried in order with
// exponential backoff across network drops and page reloads.

const MAX_DELAY_MS = 30000;

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
        // The server refused this item for good (validation); keep it aside, never resend.
        const why = await res.text().catch(() => "");
        const rejected = this._load(this.rejectedKey);
        rejected.push({ ...item, status: res.status, why: why.slice(0, 500) });
        this.storage.setItem(this.rejectedKey, JSON.stringify(rejected.slice(-50)));
        console.warn("save refused", res.status, why);
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
    this.items.shift();
    this._persist();
    this._sendNext();
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
