// The device check: the camera and microphone go to the media worker, which sends the picture back
// and, after a few seconds, says in plain words how the camera, microphone and network did.

const root = document.getElementById("device-check");
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const check = { pc: null, result: null };
window.telerehabDeviceCheck = check; // for the browser tests

function status(text) { $("check-status").textContent = text; }

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") { resolve(); return; }
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
  });
}

function showFindings(findings) {
  const list = $("findings");
  list.replaceChildren();
  for (const finding of findings) {
    const item = document.createElement("li");
    item.className = `finding-${finding.level}`;
    const subject = document.createElement("strong");
    subject.textContent = `${finding.subject[0].toUpperCase()}${finding.subject.slice(1)}: `;
    item.append(subject, document.createTextNode(finding.advice));
    list.append(item);
  }
}

async function start() {
  $("start-check").disabled = true;
  $("findings").replaceChildren();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (error) {
    status("Your camera or microphone could not be started. Allow them for this site and try again.");
    $("start-check").disabled = false;
    return;
  }
  $("local-video").srcObject = stream;
  status("Connecting to the clinic…");
  const started = await fetch(root.dataset.startUrl, { method: "POST", headers: { "X-CSRFToken": csrfToken } });
  const { media_session_id: id, token, ice_servers: iceServers } = await started.json();
  const headers = { "X-Media-Token": token, "Content-Type": "application/json" };
  const url = `/video/media-sessions/${id}`;
  const pc = new RTCPeerConnection({ iceServers });
  check.pc = pc;
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.ontrack = ({ track, streams }) => { if (track.kind === "video") $("echo-video").srcObject = streams[0] || new MediaStream([track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc); // the worker takes one full offer
  await fetch(`${url}/offer`, { method: "POST", headers, body: JSON.stringify({ sdp: pc.localDescription.sdp }) });
  let state = await (await fetch(`${url}?until=answered&wait=20`, { headers })).json();
  if (!state.answer) {
    status("The clinic's video service did not answer. Try again in a minute, or call the clinic.");
    $("start-check").disabled = false;
    return;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: state.answer });
  status("Checking… say a few words.");
  while (!["finished", "failed"].includes(state.status)) {
    state = await (await fetch(`${url}?until=done&wait=20`, { headers })).json();
  }
  pc.close();
  stream.getTracks().forEach((track) => track.stop());
  check.result = state;
  if (state.status === "finished") {
    status("Check finished.");
    showFindings(state.result.findings);
  } else {
    status("The check could not finish. Try again, or call the clinic.");
  }
  $("start-check").disabled = false;
}

$("start-check").addEventListener("click", start);
