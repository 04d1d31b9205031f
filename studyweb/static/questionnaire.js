// The questionnaire task: one trial's screen for each task type — choose the best of several
// edited images (choose_best), rate an image on a labelled scale (rate), click an object in an
// image (pick_region) or describe an image in words (describe). A trial's questions are asked one
// after another on the same screen; "Next" is enabled once the question shown is answered. The
// images take the room the window has left once the question, answers and Next are inside it
// (`fitRows`), side by side or one above another, whichever shows them larger.
// Picked points are converted from display pixels to IMAGE pixels (the natural size) here, and
// checked again by the server. pick_region highlights the object under the pointer from the pair's
// label mask, the one the server decides by, read with the server's rule (label_mask.js), so the
// object highlighted is the object stored; the background is no object.
import { fitSize, loadImage } from "./bubbleview.js";
import { labelAt, loadLabels, objectOverlay } from "./label_mask.js";

export const PICK_HINT = "Click on one of the objects (it is outlined when the pointer is over it).";
const MAX_UPSCALE = 2; // images are never shown larger than twice their natural size (unless the trial says)
const GAP_PX = 16; // between images in a row (study.css .qn-row gap)
const PAD_PX = 32; // the page's padding, both sides, and a little room
const CARD_EXTRA_PX = 14; // a candidate's padding and border, both sides (study.css .qn-candidate)
const MIN_IMAGE_PX = 48; // the least height an image gets where even that does not fit (the page then scrolls)

/**
 * Show `trial` (one entry of GET /api/v1/session, see the module comment) on `stage` and ask its
 * questions in turn. opts: heading (the progress line, e.g. "Question 3 of 10"), notice (a
 * message shown under the images at the start, e.g. why an earlier answer was refused), onRetry
 * (called while an image cannot be loaded yet).
 * Resolves with the body of the answer POST, less its idempotency key: {answers: [{question,
 * choice} | {question, rating} | {question, text} | {question, x, y} (image px), each with rt_ms
 * (from its question appearing to its "Next")], rt_ms (from the screen appearing to the last
 * "Next"), shown_order (the candidates' labels left to right,
 * choose_best; [] otherwise)}.
 */
export async function runTrial(stage, trial, opts = {}) {
  const { heading = "", notice = "", onRetry = () => {} } = opts;
  const build = BUILDERS[trial.task];
  if (!build) throw new Error(`unknown questionnaire task "${trial.task}"`);
  stage.dataset.state = "loading";
  stage.dataset.task = trial.task;
  const view = await build(trial, onRetry);
  if (view.steps.length === 0) throw new Error(`trial ${trial.id} has no questions`);
  const progress = el("p", { class: "qn-progress" });
  const question = el("h2", { class: "qn-question", id: `qn-question-${trial.id}` });
  const hint = el("p", { class: "qn-hint", role: "alert" }, notice);
  const next = el("button", { type: "button", class: "qn-next" }, "Next");
  stage.replaceChildren(progress, question, view.body, hint, el("div", { class: "qn-actions" }, next));
  const maxUpscale = trial.max_upscale ?? MAX_UPSCALE;
  // Room is kept for what may appear while the question is shown (a hint, a follow-up), so
  // nothing moves under the pointer and Next stays inside the window.
  const layout = () => {
    withRoomFor(view.reserve ?? [], hint, view.hintText ?? "", () => fitRows(view.rows, maxUpscale));
    view.onLayout?.();
  };
  const onResize = () => layout();
  window.addEventListener("resize", onResize);
  stage.hidden = false;
  stage.dataset.state = "answering";
  const shownAt = performance.now();
  const answers = [];
  try {
    for (const [i, step] of view.steps.entries()) {
      const part = view.steps.length > 1 ? ` — part ${i + 1} of ${view.steps.length}` : "";
      progress.textContent = `${heading}${part}`;
      question.textContent = step.text;
      stage.dataset.step = String(i);
      layout(); // the question's length sets the room left for the images
      const askedAt = performance.now();
      await new Promise((resolve) => {
        const update = () => { next.disabled = step.answer() === null; };
        step.start(update, (text) => { hint.textContent = text; });
        update();
        next.onclick = () => { if (step.answer() !== null) resolve(); };
      });
      const rt = Math.round(performance.now() - askedAt);
      answers.push(...step.answer().map((answer) => ({ ...answer, rt_ms: rt })));
      step.stop();
      hint.textContent = ""; // a notice about an earlier attempt has been read by now
    }
  } finally {
    next.onclick = null;
    next.disabled = true; // while the answer is being saved
    window.removeEventListener("resize", onResize);
  }
  stage.dataset.state = "answered";
  return { answers, rt_ms: Math.round(performance.now() - shownAt), shown_order: view.shownOrder ?? [] };
}

/**
 * The image-pixel point (natural size natW x natH) under a click at (clientX, clientY) on an
 * element whose bounding rectangle is `rect` and which shows the whole image; null outside it.
 */
export function toImagePoint(clientX, clientY, rect, natW, natH) {
  const x = ((clientX - rect.left) / rect.width) * natW;
  const y = ((clientY - rect.top) / rect.height) * natH;
  if (!(x >= 0 && y >= 0 && x <= natW && y <= natH)) return null;
  return { x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100 };
}

// --- one builder per task: {body, rows, steps: [{text, start(onChange, say), answer(), stop()}], shownOrder,
// reserve, hintText, onLayout}: rows are the image rows fitRows sizes, reserve the elements
// shown later in the trial (room is kept for them), hintText the longest hint a step may give,
// onLayout what to redo once the images have their size ---

const BUILDERS = {
  async choose_best(trial, onRetry) {
    const ref = trial.reference ?? {};
    const refSpecs = [[ref.input_url, "Original"], [ref.target_map_url, "Target attention"]].filter(([url]) => url);
    const [refImages, candImages] = await Promise.all([
      Promise.all(refSpecs.map(([url]) => loadRetrying(url, onRetry))),
      Promise.all(trial.candidates.map((c) => loadRetrying(c.image_url, onRetry))),
    ]);
    const refFigures = refSpecs.map(([, title], i) => figure(refImages[i], title, "qn-reference"));
    const cards = trial.candidates.map((c, i) => {
      const radio = el("input", { type: "radio", value: c.label });
      const wrap = el("label", { class: "qn-candidate", "data-label": c.label },
        candImages[i], el("span", { class: "qn-label" }, radio, ` ${c.label}`));
      return { wrap, radio, img: candImages[i], label: c.label };
    });
    const group = el("div", { class: "qn-row qn-candidates", role: "radiogroup" }, ...cards.map((c) => c.wrap));
    const body = el("div", { class: "qn-body" });
    const rows = [{ row: group, imgs: candImages, extraW: CARD_EXTRA_PX }];
    if (refFigures.length) {
      const refRow = el("div", { class: "qn-row qn-references" }, ...refFigures);
      body.append(refRow);
      rows.unshift({ row: refRow, imgs: refImages, extraW: 0 });
    }
    body.append(group);
    const steps = trial.questions.map((q, k) => ({
      text: q.text,
      start(onChange) { startChoices(cards, `qn-${trial.id}-${k}`, group, trial.id, onChange); },
      answer() {
        const chosen = cards.find((c) => c.radio.checked);
        return chosen ? [{ question: q.id, choice: chosen.label }] : null;
      },
      stop() { for (const c of cards) c.radio.onchange = null; },
    }));
    return { body, rows, steps, shownOrder: cards.map((c) => c.label) };
  },

  async rate(trial, onRetry) {
    const refUrl = trial.reference?.input_url;
    const [image, original] = await Promise.all([
      loadRetrying(trial.image_url, onRetry),
      refUrl ? loadRetrying(refUrl, onRetry) : null,
    ]);
    const figures = original ? [figure(original, "Original"), figure(image, "Image to rate")] : [figure(image, "")];
    const scale = trial.scale;
    const options = scale.labels.map((label, i) => choiceButton(label, String(scale.scores[i])));
    const group = el("div", { class: "qn-scale", role: "radiogroup" }, ...options.map((o) => o.wrap));
    const row = el("div", { class: "qn-row" }, ...figures);
    const body = el("div", { class: "qn-body" }, row, group);
    const rows = [{ row, imgs: original ? [original, image] : [image], extraW: 0 }];
    const steps = trial.questions.map((q, k) => ({
      text: q.text,
      start(onChange) { startChoices(options, `qn-${trial.id}-${k}`, group, trial.id, onChange); },
      answer() {
        const i = options.findIndex((o) => o.radio.checked);
        return i < 0 ? null : [{ question: q.id, rating: scale.scores[i] }];
      },
      stop() { for (const o of options) o.radio.onchange = null; },
    }));
    return { body, rows, steps };
  },

  async pick_region(trial, onRetry) {
    const refUrl = trial.reference?.input_url;
    const [image, labels, original] = await Promise.all([
      loadRetrying(trial.image_url, onRetry),
      retrying(() => loadLabels(trial.mask_url), onRetry),
      refUrl ? loadRetrying(refUrl, onRetry) : null,
    ]);
    const natW = trial.natural_w || image.naturalWidth, natH = trial.natural_h || image.naturalHeight;
    const canvas = el("canvas", { class: "qn-objects", width: String(labels.width), height: String(labels.height) });
    const overlay = objectOverlay(canvas, labels);
    const marker = el("div", { class: "qn-marker", hidden: true });
    const picture = el("div", { class: "qn-pick", "data-picked": "", "data-hovered": "" }, image, canvas, marker);
    const fu = trial.follow_up;
    // The original is what the follow-up asks about: it appears with the follow-up, in a place
    // kept for it from the start, so the picture never moves under the pointer.
    const originalFigure = original ? figure(original, "Original", "qn-reference") : null;
    const row = el("div", { class: "qn-row" }, originalFigure, original ? figure(picture, "This image") : picture);
    const fuOptions = fu ? fu.choices.map((c) => choiceButton(c, c)) : [];
    const fuGroup = el("div", { class: "qn-scale", role: "radiogroup" }, ...fuOptions.map((o) => o.wrap));
    const followUp = el("div", { class: "qn-followup", hidden: true }, el("p", { class: "qn-followup-text" }, fu?.text ?? ""), fuGroup);
    const body = el("div", { class: "qn-body" }, row, followUp);
    const rows = [{ row, imgs: original ? [original, image] : [image], extraW: 0 }];
    const onLayout = () => overlay.scale(parseFloat(image.style.width) / labels.width);
    let point = null, picked = 0, hovered = 0;
    const show = () => {
      overlay.draw(picked, hovered);
      picture.dataset.picked = picked ? String(picked) : "";
      picture.dataset.hovered = hovered ? String(hovered) : "";
    };
    const labelUnder = (event) => {
      const p = toImagePoint(event.clientX, event.clientY, image.getBoundingClientRect(), natW, natH);
      return { p, label: p ? labelAt(p, labels, natW, natH) : 0 };
    };
    const steps = trial.questions.map((q, k) => {
      const last = k === trial.questions.length - 1;
      const withFollowUp = last && fu;
      const reveal = (on) => {
        followUp.hidden = !(withFollowUp && on);
        originalFigure?.classList.toggle("qn-pending", Boolean(withFollowUp) && !on);
      };
      return {
        text: q.text,
        start(onChange, say) {
          point = null;
          picked = 0;
          hovered = 0;
          marker.hidden = true;
          reveal(false);
          show();
          if (withFollowUp) startChoices(fuOptions, `qn-${trial.id}-fu`, fuGroup, null, onChange);
          picture.onpointermove = (event) => {
            const { label } = labelUnder(event);
            if (label !== hovered) { hovered = label; show(); }
          };
          picture.onpointerleave = () => { hovered = 0; show(); };
          picture.onclick = (event) => {
            const { p, label } = labelUnder(event);
            if (!label) { // the background (or off the image): nothing is picked by it
              say(PICK_HINT);
              return onChange();
            }
            say("");
            if (withFollowUp && picked && picked !== label) { // a new object: ask again
              for (const o of fuOptions) { o.radio.checked = false; o.wrap.classList.remove("selected"); }
            }
            point = p;
            picked = label;
            Object.assign(marker.style, { left: pct(p.x, natW), top: pct(p.y, natH) });
            marker.hidden = false;
            show();
            reveal(true);
            onChange();
          };
        },
        answer() {
          if (!point) return null;
          // choice: the object highlighted, which the server finds under the point too (or refuses)
          const answers = [{ question: q.id, x: point.x, y: point.y, choice: String(picked) }];
          if (withFollowUp) {
            const chosen = fuOptions.find((o) => o.radio.checked);
            if (!chosen) return null;
            answers.push({ question: fu.id, choice: chosen.radio.value });
          }
          return answers;
        },
        stop() {
          picture.onclick = picture.onpointermove = picture.onpointerleave = null;
          for (const o of fuOptions) o.radio.onchange = null;
        },
      };
    });
    return { body, rows, steps, reserve: fu ? [followUp] : [], hintText: PICK_HINT, onLayout };
  },

  async describe(trial, onRetry) {
    const image = await loadRetrying(trial.image_url, onRetry);
    const max = trial.max_chars;
    const text = el("textarea", { class: "qn-text", rows: "4", cols: "60", maxlength: String(max) });
    const counter = el("span", { class: "qn-counter" });
    const row = el("div", { class: "qn-row" }, figure(image, ""));
    const body = el("div", { class: "qn-body" }, row, el("div", { class: "qn-describe" }, text, counter));
    const rows = [{ row, imgs: [image], extraW: 0 }];
    const steps = trial.questions.map((q) => ({
      text: q.text,
      start(onChange) {
        text.value = "";
        text.setAttribute("aria-labelledby", `qn-question-${trial.id}`);
        const count = () => {
          counter.textContent = `${text.value.length} / ${max} characters`;
          onChange();
        };
        text.oninput = count;
        count();
        text.focus();
      },
      answer() {
        const value = text.value.trim();
        return value && value.length <= max ? [{ question: q.id, text: value }] : null;
      },
      stop() { text.oninput = null; },
    }));
    return { body, rows, steps };
  },
};

// --- helpers -------------------------------------------------------------------------------

/** An element `tag` with attributes (`hidden: true` sets the property) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "hidden") node.hidden = Boolean(v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** A captioned image: <figure class="qn-figure"><figcaption>title</figcaption><img></figure>. */
function figure(img, title, cls = "") {
  return el("figure", { class: `qn-figure ${cls}`.trim() }, title ? el("figcaption", {}, title) : null, img);
}

/** One radio of a radio group, drawn as a button: {wrap (the label), radio}. */
function choiceButton(text, value) {
  const radio = el("input", { type: "radio", value });
  return { wrap: el("label", { class: "qn-choice" }, radio, el("span", {}, text)), radio };
}

/** Reset `options` for a new question: a fresh group name, none checked, changes reported. */
function startChoices(options, name, group, trialId, onChange) {
  if (trialId !== null) group.setAttribute("aria-labelledby", `qn-question-${trialId}`);
  for (const o of options) {
    o.radio.name = name;
    o.radio.checked = false;
    o.wrap.classList.remove("selected");
    o.radio.onchange = () => {
      for (const p of options) p.wrap.classList.toggle("selected", p.radio.checked);
      onChange();
    };
  }
}

/**
 * Size the images of `rows` ([{row, imgs, extraW}]: a .qn-row grid, its images, the width each
 * image's frame adds) as large as the window allows with the rest of the page (progress,
 * question, captions, answers, Next) inside it too, never more than maxUpscale x their natural
 * size. Each arrangement of the rows is tried — a row's images all side by side, in two lines,
 * ..., one above the other: the page is laid out with the images at their widest and 0 px high
 * to measure the height the rest takes, and the height left is shared among the lines of images
 * (a line held back by the width takes only what it needs). The arrangement whose smallest image
 * is largest wins; of equal ones, the one with more side by side. CSS px throughout.
 */
function fitRows(rows, maxUpscale = MAX_UPSCALE) {
  const width = availableWidth();
  let best = null;
  for (const across of arrangements(rows.map((r) => r.imgs.length))) {
    const plan = planRows(rows, across, width, maxUpscale);
    if (!best || plan.least > best.least * 1.01) best = plan;
  }
  if (!best) return;
  applyPlan(rows, best);
  // Captions may wrap anew at the final widths: take what that added from every line.
  const over = contentHeight() - window.innerHeight;
  if (over > 0) {
    const lines = best.lines.reduce((n, line) => n + line.count, 0);
    for (const line of best.lines) line.h = Math.max(MIN_IMAGE_PX, line.h - Math.ceil(over / lines));
    applyPlan(rows, { ...best, sizes: sizesOf(rows, best.lines, maxUpscale) });
  }
}

/** Every choice of images across per row, most side by side first: [[k of row 0, k of row 1, ...], ...]. */
function arrangements(counts) {
  const options = counts.map((n) => [...new Set(Array.from({ length: n }, (_, r) => Math.ceil(n / (r + 1))))]);
  return options.reduce((acc, ks) => acc.flatMap((a) => ks.map((k) => [...a, k])), [[]]);
}

/** The images' sizes with `across` images per line in each row: {lines, sizes, least (the smallest scale)}. */
function planRows(rows, across, width, maxUpscale) {
  const lines = rows.map((r, i) => {
    const k = across[i];
    const maxW = Math.max(1, (width - GAP_PX * (k - 1)) / k - r.extraW);
    const widest = r.imgs.map((img) => fitSize(img.naturalWidth, img.naturalHeight, maxW, Infinity, maxUpscale));
    return { k, maxW, widest, tallest: Math.max(...widest.map((s) => s.h)), count: Math.ceil(r.imgs.length / k) };
  });
  applyPlan(rows, { lines, sizes: lines.map((line) => line.widest.map(({ w }) => ({ w, h: 0 }))) });
  let left = window.innerHeight - contentHeight();
  let n = lines.reduce((sum, line) => sum + line.count, 0);
  for (const line of [...lines].sort((a, b) => a.tallest - b.tallest)) {
    line.h = Math.max(MIN_IMAGE_PX, Math.min(line.tallest, Math.floor(left / n)));
    left -= line.h * line.count;
    n -= line.count;
  }
  const sizes = sizesOf(rows, lines, maxUpscale);
  const least = Math.min(...rows.flatMap((r, i) => r.imgs.map((img, j) => sizes[i][j].w / img.naturalWidth)));
  return { across, lines, sizes, least };
}

function sizesOf(rows, lines, maxUpscale) {
  return rows.map((r, i) => r.imgs.map((img) => fitSize(img.naturalWidth, img.naturalHeight, lines[i].maxW, lines[i].h,
    maxUpscale)));
}

function applyPlan(rows, { lines, sizes }) {
  rows.forEach((r, i) => {
    r.row.style.setProperty("--across", String(lines[i].k));
    r.imgs.forEach((img, j) => {
      img.style.width = `${sizes[i][j].w}px`;
      img.style.height = `${sizes[i][j].h}px`;
    });
  });
}

/**
 * Run `measure` with room made for what is not shown yet: the `reserve` elements shown (but not
 * visible) and an empty hint holding `hintText`; all is put back before the browser paints.
 */
function withRoomFor(reserve, hint, hintText, measure) {
  const hidden = reserve.filter((node) => node.hidden);
  const text = hint.textContent;
  for (const node of hidden) { node.hidden = false; node.style.visibility = "hidden"; }
  if (!text) hint.textContent = hintText;
  try {
    return measure();
  } finally {
    for (const node of hidden) { node.hidden = true; node.style.visibility = ""; }
    hint.textContent = text;
  }
}

/** The height of the page's content (CSS px), whatever the window's. */
function contentHeight() {
  return document.body.getBoundingClientRect().height;
}

function availableWidth() {
  return Math.max(100, document.documentElement.clientWidth - PAD_PX);
}

function pct(v, of) {
  return `${(100 * v) / of}%`;
}

/** loadImage(url), retried with backoff while it fails (network down, server restarting). */
function loadRetrying(url, onRetry) {
  return retrying(async () => {
    const img = await loadImage(url);
    img.draggable = false;
    img.alt = "";
    return img;
  }, onRetry);
}

/** load(), retried with backoff while it fails (network down, server restarting). */
async function retrying(load, onRetry) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await load();
    } catch (err) {
      if (attempt >= 8) throw err;
      onRetry(attempt);
      await new Promise((r) => setTimeout(r, Math.min(15000, 500 * 2 ** attempt)));
    }
  }
}
