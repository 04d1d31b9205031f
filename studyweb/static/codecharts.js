// The CodeCharts task (Rudoy et al.; TurkEyes): one trial's screens. A fixation cross, then
// the image (or, in a sentinel trial, a target on a blank screen), then a chart of codes, then
// a box for the code the participant saw last. Everything is drawn in the trial's display px
// (its fixed display size, CSS px), scaled down to what the window holds but never so far that a
// code is drawn less than trial.min_code_px high (`fitStage`), in canvases prepared before the
// timed screens start, so switching screens is only a visibility change made in a
// requestAnimationFrame callback.
import { getJson } from "./study_page.js";
import { loadImage } from "./bubbleview.js";

const BACKGROUND = "#ffffff";
const INK = "#111111";
const CODE_FONT = '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace';
export const SHAPE_HINT = "Type the code you saw last: a letter and two digits, like B47";
const prepared = new WeakMap(); // stage -> {trial, chart, shown (the image drawn), scale (as drawn)}

/**
 * The canonical form (upper case, no whitespace) of a typed answer shaped like a code — a letter
 * and two digits ("b 47 " -> "B47") — or null. Mirrors studyweb.codecharts.normalise_code, so
 * a typo is caught here without a round trip and the server never refuses a shape we sent.
 */
export function normaliseCode(text) {
  const code = String(text ?? "").replace(/\s+/g, "").toUpperCase();
  return /^[A-Z][0-9]{2}$/.test(code) ? code : null;
}

/**
 * Load what a trial shows — the image (image trials) or the sentinel's screen, and the chart
 * JSON — and draw its three screens into the stage's canvases (canvas.cc-fixation,
 * canvas.cc-stimulus, canvas.cc-chart) at trial.display_w x trial.display_h CSS px (`fitStage`
 * draws them smaller). A sentinel's screen comes as a picture (chart.sentinel_png): the page is
 * never told where its target is, the server judges the answer. Resolves with the chart
 * (display px).
 */
export async function prepareTrial(stage, trial, token, onRetry) {
  const [chart, image] = await Promise.all([
    getJson(trial.chart_url, token, onRetry),
    trial.kind === "image" && trial.image_url ? loadImage(trial.image_url) : null,
  ]);
  const shown = image ?? (chart.sentinel_png ? await loadImage(chart.sentinel_png) : null);
  if (shown && shown.decode) await shown.decode().catch(() => {});
  const item = { trial, chart, shown, scale: null };
  prepared.set(stage, item);
  drawStage(stage, item, 1);
  return chart;
}

/**
 * Fit the prepared trial's image area into availW x availH CSS px: as large as fits, never
 * larger than its display size, and never so small that a code is drawn under trial.min_code_px
 * CSS px high (the code height is the chart's font size; a trial whose codes are smaller than
 * that at its display size is drawn at that size only). Redraws the stage's canvases when the
 * scale changes. Returns {scale (of the display size; null: it does not fit, nothing was
 * drawn), need: {w, h} (the smallest area, CSS px, it fits in)}.
 */
export function fitStage(stage, availW, availH) {
  const item = prepared.get(stage);
  const { display_w: w, display_h: h } = item.trial;
  const least = Math.min(1, (item.trial.min_code_px ?? item.chart.font_px) / item.chart.font_px);
  const need = { w: Math.ceil(w * least), h: Math.ceil(h * least) };
  const scale = Math.min(1, availW / w, availH / h);
  if (!(scale >= least - 1e-9)) return { scale: null, need };
  if (scale !== item.scale) drawStage(stage, item, scale);
  return { scale, need };
}

/** Draw the chart's codes, each centred on its (x, y) in display px, on a plain background. */
export function drawChart(ctx, chart) {
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, chart.width, chart.height);
  ctx.fillStyle = INK;
  ctx.font = `bold ${chart.font_px}px ${CODE_FONT}`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const { code, x, y } of chart.codes) ctx.fillText(code, x, y);
}

/** A black fixation cross at the centre of a blank w x h area. */
export function drawFixation(ctx, w, h) {
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, w, h);
  const arm = Math.max(8, Math.round(Math.min(w, h) * 0.025));
  const thick = Math.max(2, Math.round(arm / 4));
  ctx.fillStyle = INK;
  ctx.fillRect(w / 2 - arm, h / 2 - thick / 2, 2 * arm, thick);
  ctx.fillRect(w / 2 - thick / 2, h / 2 - arm, thick, 2 * arm);
}

/**
 * Run the timed screens of a prepared trial on `stage`, then ask for the code.
 * The stage's data-screen says what is shown: "fixation", "image" | "sentinel", "chart",
 * "answer". Durations come from trial.fixation_ms, image_ms, chart_ms.
 * Resolves with {code (the text typed), rt_ms (from the answer box appearing), events} where
 * events are the screens as shown ({type: "screen", t_ms from the fixation's start,
 * data: {screen, shown_ms}}), the size they were drawn at ({type: "stage_size", data: {w, h,
 * code_px}}, CSS px) and any typed answers of the wrong shape.
 */
export async function runTrial(stage, trial) {
  const screens = [
    { screen: "fixation", el: stage.querySelector(".cc-fixation"), ms: trial.fixation_ms },
    { screen: trial.kind === "sentinel" ? "sentinel" : "image", el: stage.querySelector(".cc-stimulus"), ms: trial.image_ms },
    { screen: "chart", el: stage.querySelector(".cc-chart"), ms: trial.chart_ms },
  ];
  const shown = await showInTurn(stage, screens);
  const events = shown.map((s) => ({ type: "screen", t_ms: round(s.at - shown[0].at), data: { screen: s.screen, shown_ms: round(s.ms) } }));
  const item = prepared.get(stage);
  const scale = item?.scale ?? 1; // the window may have made it smaller than the display size (fitStage)
  events.push({ type: "stage_size", t_ms: 0, data: { w: round(trial.display_w * scale), h: round(trial.display_h * scale),
    code_px: item ? round(item.chart.font_px * scale) : null } });
  const answerShownAt = shown[shown.length - 1].at + shown[shown.length - 1].ms;
  const { code, submittedAt, badShapes } = await askForCode(stage);
  for (const t of badShapes) events.push({ type: "code_bad_shape", t_ms: round(t - shown[0].at) });
  return { code, rt_ms: round(Math.max(0, submittedAt - answerShownAt)), events };
}

// --- helpers -------------------------------------------------------------------------------

/** Draw a prepared trial's three screens on `stage` at `scale` x its display size. */
function drawStage(stage, item, scale) {
  const { trial, chart, shown } = item;
  const w = trial.display_w, h = trial.display_h;
  stage.style.width = `${w * scale}px`;
  stage.style.height = `${h * scale}px`;
  drawFixation(sized(stage.querySelector(".cc-fixation"), w, h, scale), w, h);
  const stimulus = sized(stage.querySelector(".cc-stimulus"), w, h, scale);
  stimulus.fillStyle = BACKGROUND;
  stimulus.fillRect(0, 0, w, h);
  if (shown) stimulus.drawImage(shown, 0, 0, w, h);
  drawChart(sized(stage.querySelector(".cc-chart"), w, h, scale), chart);
  item.scale = scale;
}

/**
 * A 2D context for `canvas` shown at scale x (w x h) CSS px (backing store in device px),
 * drawing in the w x h display px.
 */
function sized(canvas, w, h, scale = 1) {
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${w * scale}px`;
  canvas.style.height = `${h * scale}px`;
  canvas.width = Math.round(w * scale * dpr);
  canvas.height = Math.round(h * scale * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(canvas.width / w, 0, 0, canvas.height / h, 0, 0);
  return ctx;
}

/**
 * Show each of `screens` ({screen, el, ms}) in turn, switching in requestAnimationFrame
 * callbacks; a screen gives way at the first frame within half a frame of its duration, so it
 * is shown as close to `ms` as the display's refresh allows. Resolves (after hiding the last)
 * with [{screen, at, ms}]: when each was switched on (performance.now() clock) and for how long.
 */
function showInTurn(stage, screens) {
  for (const s of screens) s.el.hidden = true;
  return new Promise((resolve) => {
    const shown = [];
    let i = -1, frame = 1000 / 60, last = null;
    function show(k, ts) {
      if (k > 0) screens[k - 1].el.hidden = true;
      if (k > 0) shown[k - 1].ms = ts - shown[k - 1].at;
      i = k;
      if (k < screens.length) {
        screens[k].el.hidden = false;
        stage.dataset.screen = screens[k].screen;
        shown.push({ screen: screens[k].screen, at: ts, ms: null });
      }
    }
    function step(ts) {
      if (last !== null) {
        const d = ts - last;
        if (d > 4 && d < 50) frame = 0.9 * frame + 0.1 * d; // the refresh interval, smoothed
      }
      last = ts;
      if (i < 0) show(0, ts);
      else if (ts - shown[i].at >= screens[i].ms - frame / 2) show(i + 1, ts);
      if (i < screens.length) requestAnimationFrame(step);
      else resolve(shown);
    }
    requestAnimationFrame(step);
  });
}

/** Show the answer box until a code-shaped answer is submitted (Enter or OK). */
function askForCode(stage) {
  const form = stage.querySelector(".cc-answer");
  const input = form.querySelector("input");
  const hint = form.querySelector(".cc-hint");
  input.value = "";
  hint.textContent = "";
  form.hidden = false;
  stage.dataset.screen = "answer";
  input.focus();
  const badShapes = [];
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const submittedAt = performance.now();
      if (normaliseCode(input.value) === null) {
        badShapes.push(submittedAt);
        hint.textContent = SHAPE_HINT;
        input.select();
        input.focus();
        return;
      }
      form.onsubmit = null;
      form.hidden = true;
      resolve({ code: input.value.trim().slice(0, 32), submittedAt, badShapes });
    };
  });
}

function round(ms) {
  return Math.round(ms * 10) / 10;
}
