// Fills the instructions form with the screen and window size (CSS px) and devicePixelRatio
// before it is sent.
for (const [id, value] of [
  ["screen_w", screen.width], ["screen_h", screen.height],
  ["window_w", window.innerWidth], ["window_h", window.innerHeight],
  ["dpr", window.devicePixelRatio || 1],
]) {
  const el = document.getElementById(id);
  if (el) el.value = String(value);
}
