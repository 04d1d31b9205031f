// A pick_region trial's label mask in the page: the mask pixel under a point by the server's rule
// (studyweb.tasks.pick_region.mask_cell), the mask loaded from its PNG, and the highlights drawn
// over an object's own pixels. The mask holds one label per pixel (0 background, k = the object with
// mask id k; DESIGN.md §2), so overlapping objects resolve here as they do on the server.

// Highlights over an object's own mask pixels (RGBA): picked, under the pointer. The outline is
// two bands, light outside and dark inside, so it shows on an object of any colour.
const PICKED = { fill: [255, 212, 0, 110], edge: [255, 212, 0, 255], inner: [0, 0, 0, 220] };
const HOVERED = { fill: [255, 255, 255, 60], edge: [255, 255, 255, 255], inner: [26, 95, 180, 255] };
const EDGE_CSS_PX = 2; // each band's width on screen

/**
 * The mask pixel {row, col} under `point` (image px of an image of natural size natW x natH) in a
 * label mask of maskW x maskH: col = floor(x * maskW / natW) clamped to [0, maskW - 1], row
 * likewise; null outside the image. The server's rule (studyweb.tasks.pick_region.mask_cell),
 * with the same sums in the same order, on the same rounded point the answer sends.
 */
export function maskCell(point, natW, natH, maskW, maskH) {
  if (!point || !(point.x >= 0 && point.y >= 0 && point.x <= natW && point.y <= natH)) return null;
  return {
    row: Math.min(Math.max(Math.floor((point.y * maskH) / natH), 0), maskH - 1),
    col: Math.min(Math.max(Math.floor((point.x * maskW) / natW), 0), maskW - 1),
  };
}

/** The mask id under `point` in `labels` ({width, height, data}, see loadLabels); 0 for the background or none. */
export function labelAt(point, labels, natW, natH) {
  const cell = maskCell(point, natW, natH, labels.width, labels.height);
  return cell ? labels.data[cell.row * labels.width + cell.col] : 0;
}

/**
 * The label mask at `url` (an 8-bit grey PNG: 0 background, k = the object with mask id k) as
 * {width, height, data: Uint8Array, one label per pixel, row after row}. Decoded without colour
 * management, so each pixel's value is the label the server reads.
 */
export async function loadLabels(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not load ${url} (${response.status})`);
  const bitmap = await createImageBitmap(await response.blob(),
    { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const { width, height } = bitmap;
  const canvas = document.createElement("canvas");
  Object.assign(canvas, { width, height });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i += 1) data[i] = rgba[4 * i];
  return { width, height, data };
}

/**
 * Draws pick_region's highlights on `canvas` (the label mask's size, stretched over the image by
 * study.css): the picked and the hovered object filled over their own mask pixels, outlined along
 * their edges (pixels within a band's width of another label or of the image's border), nothing
 * drawn outside the object. scale(CSS px per mask px) sets the bands' width before draw().
 */
export function objectOverlay(canvas, labels) {
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(labels.width, labels.height);
  let outer = null, inner = null, bandPx = 0;
  return {
    scale(cssPerMaskPx) {
      const t = Math.max(1, Math.round(EDGE_CSS_PX / cssPerMaskPx));
      if (t !== bandPx) { bandPx = t; outer = edges(labels, t); inner = edges(labels, 2 * t); }
    },
    draw(picked, hovered) {
      const out = pixels.data;
      out.fill(0);
      if (outer) {
        for (let i = 0; i < labels.data.length; i += 1) {
          const label = labels.data[i];
          const style = label === 0 ? null : label === picked ? PICKED : label === hovered ? HOVERED : null;
          if (style) out.set(outer[i] ? style.edge : inner[i] ? style.inner : style.fill, 4 * i);
        }
      }
      ctx.putImageData(pixels, 0, 0);
    },
  };
}

/** 1 where a pixel of `labels` lies within t pixels (a square) of another label or the border. */
function edges({ width: w, height: h, data }, t) {
  const lo = new Uint8Array(w * h), hi = new Uint8Array(w * h), out = new Uint8Array(w * h);
  for (let r = 0; r < h; r += 1) { // min and max over each row's window, then each column's
    for (let c = 0; c < w; c += 1) {
      let a = 255, b = 0;
      for (let k = Math.max(0, c - t); k <= Math.min(w - 1, c + t); k += 1) {
        const v = data[r * w + k];
        a = Math.min(a, v);
        b = Math.max(b, v);
      }
      lo[r * w + c] = a;
      hi[r * w + c] = b;
    }
  }
  for (let r = 0; r < h; r += 1) {
    for (let c = 0; c < w; c += 1) {
      const i = r * w + c;
      let a = 255, b = 0;
      for (let k = Math.max(0, r - t); k <= Math.min(h - 1, r + t); k += 1) {
        a = Math.min(a, lo[k * w + c]);
        b = Math.max(b, hi[k * w + c]);
      }
      out[i] = a !== data[i] || b !== data[i] || r < t || c < t || r >= h - t || c >= w - t ? 1 : 0;
    }
  }
  return out;
}
