// Visit pages: copy a secret address, and keep a cadence row's look in step with its place.
// A plain ES module, loaded with <script type="module">; no inline script (the CSP refuses it).

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    // No clipboard permission (or an insecure origin): select the text for a manual copy.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: copy it";
  }
});

// A cadence row whose place changes takes the other colour and icon class at once.
document.addEventListener("change", (event) => {
  const select = event.target.closest("select.modality-select");
  if (!select) return;
  const row = select.closest("tr");
  if (!row) return;
  const video = select.value === "video";
  row.classList.toggle("visit-video", video);
  row.classList.toggle("visit-clinic", !video);
});
