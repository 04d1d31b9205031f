// The BubbleView task (Kim et al.): the image is shown blurred; each click reveals one
// sharp circle around the click point. Clicks are converted from display pixels to IMAGE
// pixels (the image's natural size) here, and checked again by the server.
//
// The time limit (trial.time_limit_ms) is the server's rule too (studyweb/api, which stores a
// click more than LATE_GRACE_MS = 1000 ms past it as late): no click is taken at or past the
// limit; there the trial ends, or in the describe mode the clicking ends (the clicks made go to
// the server at once) and the description follows. The timer counts whole seconds left and
// never shows "0 s" while clicks are still taken.

const SAVE_EVERY_MS = 3000;
const PAD_PX = 24; // kept free beside the canvas
const MIN_SIDE_PX = 50; // the least the canvas is given where even that does not fit (the page then scrolls)

/** Load an image URL into an HTMLImageElement. */
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

/**
 * Display size (CSS px) that fits an image of natural size (w, h) into (maxW, maxH),
 * keeping its aspect ratio and enlarging it at most `maxScale` times.
 */
export function fitSize(w, h, maxW, maxH, maxScale = Infinity) {
  const s = Math.max(0, Math.min(maxW / w, maxH / h, maxScale));
  return { w: Math.max(1, Math.floor(w * s)), h: Math.max(1, Math.floor(h * s)) };
}

/**
 * The elapsed time (ms) of a trial recorded in this browser, so a reload resumes with the
 * time that was left even when the last save before it has not reached the server.
 */
export const elapsedStore = {
  key: (owner, trialId) => `gazelab.elapsed.${owner}.${trialId}`,
  get(owner, trialId) {
    try {
      return Number(localStorage.getItem(this.key(owner, trialId))) || 0;
    } catch {
      return 0; // storage blocked: the server's elapsed_ms still counts
    }
  },
  set(owner, trialId, ms) {
    try { localStorage.setItem(this.key(owner, trialId), String(ms)); } catch { /* as above */ }
  },
  clear(owner, trialId) {
    try { localStorage.removeItem(this.key(owner, trialId)); } catch { /* as above */ }
  },
};

/**
 * Image-pixel coordinates of a pointer event on `canvas` showing an image of natural
 * size (natW, natH); null when the event falls outside the image.
 */
export function toImagePx(event, canvas, natW, natH) {
  const r = canvas.getBoundingClientRect();
  const x = ((event.clientX - r.left) / r.width) * natW;
  const y = ((event.clientY - r.top) / r.height) * natH;
  if (!(x >= 0 && y >= 0 && x < natW && y < natH)) return null;
  return { x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100 };
}

/**
 * Run one trial on `root` (an element holding canvas.bv-canvas, .bv-timer, and for the
 * describe mode textarea.bv-text + button.bv-done).
 *
 * trial: {id, natural_w, natural_h, blurred_url, sharp_url, mode ("free"|"describe"),
 *         time_limit_ms, click_cap, bubble_radius (image px), save_url,
 *         display_width_px (CSS px), max_upscale, clicks_saved: [{x, y, t_ms}], elapsed_ms}
 * The image is shown at min(display_width_px, max_upscale × natural width, what fits the
 * window) CSS px wide, with what lies under it (the text box and Done) inside the window too;
 * the timer counts on from the larger of the server's elapsed_ms and
 * the time recorded in this browser.
 * saver: a SaveQueue, or null for the practice trial (nothing is stored).
 * images: optional {blurred, sharp} already-loaded images (the practice trial draws its own).
 * The canvas' data-state says where the trial is: "loading", "running" (clicks taken),
 * "describe" (describe mode, time up: no clicks, the description is awaited), "done".
 * Resolves with {clicks} (all clicks of this trial, image px) when the trial ends.
 */
export async function runTrial(root, trial, saver, images = null) {
  root.querySelector(".bv-canvas").dataset.state = "loading";
  const { blurred, sharp } = images ?? {
    blurred: await loadImage(trial.blurred_url),
    sharp: await loadImage(trial.sharp_url),
  };
  const natW = trial.natural_w, natH = trial.natural_h;
  const canvas = root.querySelector(".bv-canvas");
  const timerEl = root.querySelector(".bv-timer");
  const ctx = canvas.getContext("2d");
  const radius = trial.bubble_radius;
  const owner = saver ? saver.token : "practice";
  // Time already spent before a reload, ms; the larger value is the one nearer the truth.
  const offset = Math.max(trial.elapsed_ms || 0, elapsedStore.get(owner, trial.id));
  const started = performance.now();
  const now = () => Math.round(offset + performance.now() - started);
  const allClicks = [...(trial.clicks_saved || [])];
  let unsent = [];
  let events = [];
  let display = { w: 0, h: 0 };

  function layout() {
    const box = canvas.getBoundingClientRect();
    // The canvas gets the height between what is above it and what is below it (measured).
    const below = document.body.getBoundingClientRect().bottom - box.bottom;
    const maxW = Math.min(trial.display_width_px ?? Infinity, document.documentElement.clientWidth - PAD_PX);
    const maxH = Math.max(MIN_SIDE_PX, window.innerHeight - (box.top + window.scrollY) - below);
    display = fitSize(natW, natH, Math.max(MIN_SIDE_PX, maxW), maxH, trial.max_upscale ?? Infinity);
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${display.w}px`;
    canvas.style.height = `${display.h}px`;
    canvas.width = Math.round(display.w * dpr);
    canvas.height = Math.round(display.h * dpr);
    // Draw in image pixels: the transform maps natural size onto the backing store.
    ctx.setTransform(canvas.width / natW, 0, 0, canvas.height / natH, 0, 0);
    draw(allClicks[allClicks.length - 1]);
  }

  function draw(bubble) {
    ctx.drawImage(blurred, 0, 0, natW, natH);
    if (!bubble) return;
    ctx.save();
    ctx.beginPath();
    ctx.arc(bubble.x, bubble.y, radius, 0, 2 * Math.PI);
    ctx.clip();
    ctx.drawImage(sharp, 0, 0, natW, natH);
    ctx.restore();
  }

  /** Queue what is unsent; with nothing unsent only when `done` or `always`. */
  function save(done, extra = {}, always = false) {
    if (!saver) return;
    if (!done && !always && unsent.length === 0 && events.length === 0) return;
    saver.enqueue(trial.save_url, {
      clicks: unsent, display_w: display.w, display_h: display.h,
      done, events, elapsed_ms: Math.min(now(), 3600000), ...extra,
    });
    unsent = [];
    events = [];
  }

  const onResize = () => { events.push({ type: "resize", t_ms: now(), data: { w: window.innerWidth, h: window.innerHeight } }); layout(); };
  const onBlur = () => events.push({ type: "focus_lost", t_ms: now() });
  // Leaving or reloading the page: queue what is unsent and the elapsed time, which a save
  // carries only with clicks or events otherwise (localStorage is written synchronously).
  const onHide = () => {
    elapsedStore.set(owner, trial.id, now());
    save(false, {}, true);
  };
  const onFs = () => { if (!document.fullscreenElement) events.push({ type: "fullscreen_exit", t_ms: now() }); };
  window.addEventListener("resize", onResize);
  window.addEventListener("blur", onBlur);
  window.addEventListener("pagehide", onHide);
  document.addEventListener("fullscreenchange", onFs);
  const textEl = root.querySelector(".bv-text");
  const doneBtn = root.querySelector(".bv-done");
  const describe = trial.mode === "describe";
  if (textEl) textEl.hidden = !describe; // before the layout, which keeps room for them
  if (doneBtn) doneBtn.hidden = !describe;
  layout();
  canvas.dataset.state = "running";

  return new Promise((resolve) => {
    let finished = false;
    if (describe && textEl) textEl.value = "";

    const limit = trial.time_limit_ms || null; // ms; null: no limit
    let clicksOpen = true;

    /** The time is up in the describe mode: no more clicks; those made are sent now. */
    function closeClicks() {
      if (!clicksOpen) return;
      clicksOpen = false;
      canvas.removeEventListener("pointerdown", onClick);
      save(false);
      canvas.dataset.state = "describe";
    }

    function finish() {
      if (finished) return;
      finished = true;
      clearInterval(tick);
      clearInterval(periodic);
      canvas.removeEventListener("pointerdown", onClick);
      window.removeEventListener("resize", onResize);
      window.removeEventListener("blur", onBlur);
      window.removeEventListener("pagehide", onHide);
      document.removeEventListener("fullscreenchange", onFs);
      if (doneBtn) doneBtn.onclick = null;
      save(true, describe && textEl ? { response_text: textEl.value } : {});
      elapsedStore.clear(owner, trial.id);
      canvas.dataset.state = "done";
      resolve({ clicks: allClicks });
    }

    function onClick(event) {
      const t = now();
      if (limit != null && t >= limit) { // the timer has not ticked yet: the time is up all the same
        onTick();
        return;
      }
      const p = toImagePx(event, canvas, natW, natH);
      if (!p) return;
      const click = { ...p, t_ms: t };
      allClicks.push(click);
      unsent.push(click);
      canvas.dataset.clicks = String(allClicks.length);
      draw(click);
      if (trial.click_cap && allClicks.length >= trial.click_cap) finish();
    }

    function onTick() {
      const elapsed = now();
      elapsedStore.set(owner, trial.id, elapsed); // before the timer shows it: a reload never shows more
      const left = limit == null ? null : limit - elapsed;
      if (left != null && left <= 0) {
        if (timerEl) timerEl.textContent = describe ? "Time is up: now describe the image." : "";
        if (describe) closeClicks(); else finish();
        return;
      }
      if (timerEl) timerEl.textContent = left == null ? "" : `${Math.ceil(left / 1000)} s`; // left > 0: at least "1 s"
    }

    const tick = setInterval(onTick, 100);
    const periodic = setInterval(() => save(false), SAVE_EVERY_MS);
    canvas.addEventListener("pointerdown", onClick);
    if (describe && doneBtn) doneBtn.onclick = () => { if (textEl.value.trim()) finish(); };
    onTick(); // the timer shows from the start, not after the first interval
    if (trial.click_cap && allClicks.length >= trial.click_cap) finish();
  });
}

/**
 * Practice images drawn in the browser: simple shapes on a 480x360 px image, and a copy
 * blurred by a Gaussian of `sigmaPx` image px.
 */
export function practiceImages(sigmaPx = 14.4) {
  const w = 480, h = 360, background = "#d8d8d0";
  const sharp = document.createElement("canvas");
  sharp.width = w; sharp.height = h;
  const c = sharp.getContext("2d");
  c.fillStyle = background; c.fillRect(0, 0, w, h);
  const shapes = [["#ad2323", 90, 120], ["#2a4bd7", 260, 200], ["#1d6914", 380, 90], ["#ffee33", 170, 280]];
  shapes.forEach(([color, x, y], i) => {
    c.fillStyle = color;
    c.beginPath();
    if (i % 2) c.arc(x, y, 40, 0, 2 * Math.PI); else c.rect(x - 35, y - 35, 70, 70);
    c.fill();
  });
  const blurred = document.createElement("canvas");
  blurred.width = w; blurred.height = h;
  const b = blurred.getContext("2d");
  b.fillStyle = background; b.fillRect(0, 0, w, h); // the blur fades the edges into this, not into black
  b.filter = `blur(${sigmaPx}px)`;
  b.drawImage(sharp, 0, 0);
  return { sharp, blurred };
}
