// The billing pages: "select all" on the workbench, an export batch's progress, printing the evidence pack.

function selectAll(box) {
  box.addEventListener("change", () => {
    box.form.querySelectorAll('input[name="line"]').forEach((line) => { line.checked = box.checked; });
  });
}

// Polls the batch's progress each second while the export job writes it; reloads once it is done.
function followProgress(bar) {
  const label = document.getElementById(bar.dataset.label);
  const tick = async () => {
    try {
      const response = await fetch(bar.dataset.progressUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const state = await response.json();
        bar.max = Math.max(state.total, 1);
        bar.value = state.done;
        if (label) label.textContent = `${state.done} of ${state.total} lines`;
        if (state.status !== "queued" && state.status !== "running") {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // A dropped request: the next tick asks again.
    }
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[data-select-all]").forEach(selectAll);
  document.querySelectorAll("progress[data-progress-url]").forEach(followProgress);
  document.querySelectorAll("[data-print]").forEach((button) => button.addEventListener("click", () => window.print()));
});
