// Fills the instructions form with the screen and window size (CSS px) before it is sent.
for (const [id, value] of [
  ["screen_w", screen.width], ["screen_h", screen.height],
  ["window_w", window.innerWidth], ["window_h", window.innerHeight],
]) {
  const el = document.getElementById(id);
  if (el) el.value = String(value);
}
