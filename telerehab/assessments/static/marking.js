// Marking the three goniometer landmarks on a still: a click on the image places the chosen
// point (axis, stationary arm, moving arm) in the image's own pixels and moves on to the next;
// the number fields stay the source of truth, so the points can also be typed. The server
// computes the angle.

const SVG = "http://www.w3.org/2000/svg";
const NAMES = ["axis", "stationary", "moving"];
const COLOURS = { axis: "#c0392b", stationary: "#0f766e", moving: "#6d28d9" };

function element(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function field(name, axis) {
  return document.getElementById(`${name}_${axis}`);
}

function point(name) {
  const x = field(name, "x").value;
  const y = field(name, "y").value;
  return x === "" || y === "" ? null : [Number(x), Number(y)];
}

function draw(svg, width) {
  const size = Math.max(6, width / 90);
  svg.replaceChildren();
  const axis = point("axis");
  for (const arm of ["stationary", "moving"]) {
    const end = point(arm);
    if (axis && end) {
      svg.append(element("line", { x1: axis[0], y1: axis[1], x2: end[0], y2: end[1], stroke: COLOURS[arm],
                                   "stroke-width": size / 2, "stroke-linecap": "round" }));
    }
  }
  for (const name of NAMES) {
    const at = point(name);
    if (!at) continue;
    svg.append(element("circle", { cx: at[0], cy: at[1], r: size, fill: COLOURS[name], stroke: "#fff",
                                   "stroke-width": size / 3, class: `landmark-dot landmark-dot-${name}` }));
  }
}

function init(stage) {
  const svg = stage.querySelector("svg");
  const width = Number(stage.dataset.width);
  const height = Number(stage.dataset.height);
  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) * width) / box.width;
    const y = ((event.clientY - box.top) * height) / box.height;
    const chosen = document.querySelector('input[name="placing"]:checked');
    const name = chosen ? chosen.value : "axis";
    field(name, "x").value = Math.round(x * 10) / 10;
    field(name, "y").value = Math.round(y * 10) / 10;
    const next = NAMES[NAMES.indexOf(name) + 1];
    if (next && !point(next)) document.getElementById(`placing-${next}`).checked = true;
    draw(svg, width);
  });
  for (const name of NAMES) {
    for (const axis of ["x", "y"]) field(name, axis).addEventListener("input", () => draw(svg, width));
  }
  draw(svg, width);
}

const stage = document.querySelector("[data-still]");
if (stage) init(stage);

// Choosing another measure reloads the page for it (a GET form; the button shows without script).
for (const form of document.querySelectorAll("form[data-autosubmit]")) {
  form.addEventListener("change", () => form.submit());
}
