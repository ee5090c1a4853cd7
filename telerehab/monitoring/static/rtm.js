// The RTM panel's running timer: shows the time since it started (the server keeps the start).
function showElapsed(element) {
  const started = Date.parse(element.dataset.started);
  const tick = () => {
    const seconds = Math.max(0, Math.floor((Date.now() - started) / 1000));
    const minutes = Math.floor(seconds / 60);
    element.textContent = `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
  };
  tick();
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".rtm-elapsed[data-started]").forEach(showElapsed);
});
