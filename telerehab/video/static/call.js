// The call page: one RTCPeerConnection per other participant, signaling through the app.
//
// Messages wait in the app's database; this page long-polls for its own (GET .../signals?after=N&wait=S).
// Whoever arrives (or is admitted) offers to everyone present; the others answer. Candidates trickle.
// A connection that fails, or stays disconnected, is restarted (ICE restart) by the side that offered.
// The room token (and the TURN credentials with it) is renewed a little before it expires.

const root = document.getElementById("call");
const visitId = root.dataset.visitId;
const roomUrl = `/video/rooms/${visitId}`;
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const mySession = crypto.randomUUID();
const pageLoaded = Date.now(); // when a guest's entry, which comes with the page, was issued
const $ = (id) => document.getElementById(id);

const call = {
  token: null, me: null, role: root.dataset.role, iceServers: [], after: 0, state: "new",
  peers: new Map(), // participant id -> {pc, offerer, remoteSession, pending: [], video, info}
  local: null, cameraTrack: null, screenTrack: null, leaving: false, quality: {},
  tokenExpiresAt: 0, refreshTimer: null, refreshes: 0, // tokenExpiresAt: by this page's clock (Date.now())
};
window.telerehabCall = call; // for the browser tests and for support staff poking at the console

function status(text) { $("call-status").textContent = text; }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function roomFetch(path, { method = "GET", body } = {}) {
  const response = await fetch(roomUrl + path, {
    method, headers: { "X-Room-Token": call.token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) expired();
  return response;
}

function expired() {
  call.leaving = true;
  status("Your place in this call has expired. Reload the page to enter again.");
}

function send(to, kind, body) {
  return roomFetch("/signals", { method: "POST", body: { to, kind, body: { ...body, session: mySession } } });
}

// ---------------------------------------------------------------- entering

async function join() {
  $("join-button").disabled = true;
  status("Starting your camera…");
  try {
    call.local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (error) {
    status("Your camera or microphone could not be started. Allow them for this site, then press Join again.");
    $("join-button").disabled = false;
    return;
  }
  call.cameraTrack = call.local.getVideoTracks()[0];
  $("local-video").srcObject = call.local;
  let entry;
  if (root.dataset.entry) {
    entry = JSON.parse(root.dataset.entry);
    entry.received = pageLoaded;
  } else {
    const response = await fetch(root.dataset.joinUrl, { method: "POST", headers: { "X-CSRFToken": csrfToken } });
    if (!response.ok) { status("This call cannot be entered now."); return; }
    entry = { ...(await response.json()), received: Date.now() };
  }
  Object.assign(call, { me: entry.participant_id, after: entry.after, state: entry.state });
  useCredentials(entry);
  for (const id of ["mute-button", "camera-button", "switch-camera-button", "leave-button", "share-button",
    "capture-button", "record-button", "still-button"]) { if ($(id)) $(id).disabled = false; }
  if (entry.state === "admitted") {
    status("Waiting for the others to connect…");
    for (const other of entry.roster) await offerTo(other);
  } else {
    status("You are in the waiting room. Your clinician will let you in shortly.");
  }
  poll();
  statsLoop();
}

// ---------------------------------------------------------------- keeping the token fresh

const REFRESH_BEFORE_MS = 5 * 60_000; // renew this long before expiry (half the token's life, if shorter)
const REFRESH_RETRY_FIRST_MS = 1000; // then doubled at each failure, while the current token lasts

// A new token serves every later request (the long-poll under way keeps the old one, which is still
// good); new TURN credentials go to every connection, since the old ones expire with the old token.
function useCredentials({ token, ice_servers: iceServers, expires_in: expiresIn, received }) {
  const lifetime = expiresIn * 1000;
  Object.assign(call, { token, iceServers, tokenExpiresAt: received + lifetime });
  for (const peer of call.peers.values()) {
    if (typeof peer.pc.setConfiguration !== "function") continue;
    try {
      peer.pc.setConfiguration({ ...peer.pc.getConfiguration(), iceServers });
    } catch (error) {
      console.warn("ICE servers not updated", error); // the connection keeps its current ones
    }
  }
  clearTimeout(call.refreshTimer);
  const wait = call.tokenExpiresAt - Math.min(REFRESH_BEFORE_MS, lifetime / 2) - Date.now();
  call.refreshTimer = setTimeout(() => refreshToken(REFRESH_RETRY_FIRST_MS), Math.max(wait, 0));
}

async function refreshToken(retryIn) {
  if (call.leaving) return;
  let response = null;
  try {
    response = await fetch(`${roomUrl}/token`, { method: "POST", headers: { "X-Room-Token": call.token } });
  } catch (error) {
    // Offline for a moment: retried below.
  }
  if (response && response.ok) {
    const fresh = await response.json();
    call.refreshes += 1;
    useCredentials({ ...fresh, received: Date.now() });
    return;
  }
  if (response && response.status < 500) {
    if (Date.now() >= call.tokenExpiresAt) { expired(); return; } // asleep past the expiry: reload
    // Refused with a token still good: removed from the call, the visit over, or off its care team.
    const { detail } = await response.json().catch(() => ({}));
    endCall(detail || "You can no longer take part in this call.");
    return;
  }
  if (Date.now() + retryIn < call.tokenExpiresAt) {
    call.refreshTimer = setTimeout(() => refreshToken(retryIn * 2), retryIn);
  } else {
    expired();
  }
}

// ---------------------------------------------------------------- signaling

async function poll() {
  while (!call.leaving) {
    let data;
    try {
      const response = await roomFetch(`/signals?after=${call.after}&wait=20`);
      if (!response.ok) { await sleep(2000); continue; }
      data = await response.json();
    } catch (error) {
      await sleep(1000); // offline for a moment: try again
      continue;
    }
    if (data.waiting) showWaiting(data.waiting);
    for (const message of data.messages) {
      call.after = message.seq;
      try { await handle(message); } catch (error) { console.warn("signal", message.kind, error); }
    }
  }
}

async function handle({ kind, from, body }) {
  switch (kind) {
    case "admitted":
      call.state = "admitted";
      status("You are in. Connecting…");
      for (const other of body.roster) await offerTo(other);
      break;
    case "offer": await onOffer(from, body); break;
    case "answer": {
      const peer = call.peers.get(from);
      if (peer && peer.pc.signalingState === "have-local-offer") {
        await peer.pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
        peer.remoteSession = body.session;
        await flushCandidates(peer);
      }
      break;
    }
    case "candidate": {
      const peer = call.peers.get(from);
      if (!peer || !body.candidate) break;
      if (!peer.pc.remoteDescription || peer.remoteSession !== body.session) peer.pending.push(body);
      else await peer.pc.addIceCandidate(body);
      break;
    }
    case "left": closePeer(body.participant_id); break;
    case "media-request": await sendToWorker(body); break;
    default: break; // "present", "waiting": the newcomer offers; the waiting list comes with each poll
  }
}

function newPeer(other, offerer) {
  closePeer(other.participant_id);
  const pc = new RTCPeerConnection({ iceServers: call.iceServers });
  const peer = { pc, offerer, remoteSession: null, pending: [], info: other, video: null, restarting: null,
    described: false, outbox: [] };
  call.peers.set(other.participant_id, peer);
  const outgoing = call.screenTrack || call.cameraTrack;
  for (const track of call.local.getTracks()) pc.addTrack(track.kind === "video" ? outgoing : track, call.local);
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate) return;
    // Candidates go after the description they belong to, or the other side has no use for them.
    if (peer.described) send(other.participant_id, "candidate", candidate.toJSON()).catch(() => {});
    else peer.outbox.push(candidate.toJSON());
  };
  pc.ontrack = ({ streams }) => { attachVideo(peer, streams[0]); };
  pc.onconnectionstatechange = () => onConnectionState(other.participant_id, peer);
  return peer;
}

async function described(peer, to, kind) {
  peer.described = false;
  await send(to, kind, { type: kind, sdp: peer.pc.localDescription.sdp });
  peer.described = true;
  for (const candidate of peer.outbox.splice(0)) send(to, "candidate", candidate).catch(() => {});
}

async function offerTo(other, { iceRestart = false } = {}) {
  const peer = iceRestart ? call.peers.get(other.participant_id) : newPeer(other, true);
  peer.described = false;
  await peer.pc.setLocalDescription(await peer.pc.createOffer({ iceRestart }));
  await described(peer, other.participant_id, "offer");
}

async function onOffer(from, body) {
  let peer = call.peers.get(from);
  if (peer && peer.pc.signalingState === "have-local-offer" && call.me < from) {
    return; // offers crossed: the lower id keeps its own offer, the other side answers it
  }
  if (!peer || peer.remoteSession !== body.session || peer.pc.signalingState !== "stable") {
    // A new page on the other side (or our offer given up): start this connection afresh.
    peer = newPeer({ participant_id: from }, false);
  }
  peer.remoteSession = body.session;
  await peer.pc.setRemoteDescription({ type: "offer", sdp: body.sdp });
  await flushCandidates(peer);
  peer.described = false;
  await peer.pc.setLocalDescription(await peer.pc.createAnswer());
  await described(peer, from, "answer");
}

async function flushCandidates(peer) {
  const pending = peer.pending.filter((c) => c.session === peer.remoteSession);
  peer.pending = [];
  for (const candidate of pending) await peer.pc.addIceCandidate(candidate);
}

function attachVideo(peer, stream) {
  if (peer.video) { peer.video.srcObject = stream; return; }
  const first = $("remote-video");
  peer.video = first.srcObject ? document.createElement("video") : first;
  if (peer.video !== first) {
    peer.video.className = "remote-video";
    peer.video.autoplay = true;
    peer.video.playsInline = true;
    $("remote-videos").append(peer.video);
  }
  peer.video.srcObject = stream;
}

function closePeer(id) {
  const peer = call.peers.get(id);
  if (!peer) return;
  call.peers.delete(id);
  peer.pc.close();
  if (peer.video) {
    if (peer.video.id === "remote-video") peer.video.srcObject = null; else peer.video.remove();
  }
  if (!call.peers.size && !call.leaving) status("The other side has left. They can rejoin at any time.");
}

const RESTART_AFTER_MS = 3000; // a brief blip often heals by itself
const RESTART_EVERY_MS = 5000; // until it is back: the network (and the signaling) may still be down

function onConnectionState(id, peer) {
  const state = peer.pc.connectionState;
  report(id, state, {});
  if (state === "connected") {
    status("");
    clearTimeout(peer.restarting);
    peer.restarting = null;
  } else if (state === "failed" || state === "disconnected") {
    status("Connection lost. Reconnecting…");
    // The side that offered restarts ICE; the other answers the new offer on the same connection.
    if (peer.offerer && !peer.restarting) {
      peer.restarting = setTimeout(() => restartIce(id, peer), state === "failed" ? 0 : RESTART_AFTER_MS);
    }
  }
}

async function restartIce(id, peer) {
  if (call.leaving || call.peers.get(id) !== peer || peer.pc.connectionState === "connected") {
    peer.restarting = null;
    return;
  }
  call.restarts = (call.restarts || 0) + 1;
  try {
    peer.pc.restartIce();
    await offerTo(peer.info, { iceRestart: true });
  } catch (error) {
    // The signaling is down too: the next attempt sends a fresh offer.
  }
  peer.restarting = setTimeout(() => restartIce(id, peer), RESTART_EVERY_MS);
}

async function report(peerId, state, stats) {
  if (call.leaving) return;
  let response;
  try {
    response = await roomFetch("/connection", { method: "POST", body: { peer: peerId, state, stats } });
  } catch (error) {
    return; // offline for a moment; the next report tells the app
  }
  if (!response.ok) return;
  const verdict = await response.json();
  const line = $("call-quality");
  line.className = `call-quality quality-${verdict.quality}`;
  $("quality-words").textContent = verdict.words;
}

// ---------------------------------------------------------------- quality from getStats

async function measure(peer) {
  const report = await peer.pc.getStats();
  const previous = peer.lastStats || {};
  const now = { lost: 0, received: 0, framesDecoded: 0, fps: null, rtt: null };
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.currentRoundTripTime !== undefined) {
      now.rtt = s.currentRoundTripTime * 1000;
    }
    if (s.type === "inbound-rtp") {
      now.lost += s.packetsLost || 0;
      now.received += s.packetsReceived || 0;
      if (s.kind === "video") {
        now.framesDecoded = s.framesDecoded || 0;
        if (s.framesPerSecond !== undefined) now.fps = s.framesPerSecond;
      }
    }
  });
  const lost = now.lost - (previous.lost || 0);
  const received = now.received - (previous.received || 0);
  peer.lastStats = now;
  return { rtt_ms: now.rtt === null ? null : Math.round(now.rtt), fps: now.fps,
    loss_percent: lost + received > 0 ? Math.round((1000 * Math.max(lost, 0)) / (lost + received)) / 10 : null,
    frames_decoded: now.framesDecoded };
}

async function statsLoop() {
  while (!call.leaving) {
    await sleep(3000);
    for (const [id, peer] of call.peers) {
      if (peer.pc.connectionState !== "connected") continue;
      const figures = await measure(peer);
      call.quality[id] = figures;
      $("quality-figures").textContent = [
        figures.rtt_ms !== null ? `delay ${figures.rtt_ms} ms` : null,
        figures.loss_percent !== null ? `loss ${figures.loss_percent}%` : null,
        figures.fps !== null ? `${Math.round(figures.fps)} frames/s` : null,
      ].filter(Boolean).join(" · ");
      const { frames_decoded: _unused, ...stats } = figures;
      await report(id, "connected", stats);
    }
  }
}

// ---------------------------------------------------------------- controls

function toggle(button, pressed, onLabel, offLabel) {
  button.setAttribute("aria-pressed", String(pressed));
  button.textContent = pressed ? onLabel : offLabel;
}

$("join-button").addEventListener("click", join);

$("mute-button").addEventListener("click", (event) => {
  const track = call.local.getAudioTracks()[0];
  track.enabled = !track.enabled;
  toggle(event.currentTarget, !track.enabled, "Unmute", "Mute");
});

$("camera-button").addEventListener("click", (event) => {
  call.cameraTrack.enabled = !call.cameraTrack.enabled;
  toggle(event.currentTarget, !call.cameraTrack.enabled, "Camera on", "Camera off");
});

async function sendVideo(track) {
  for (const peer of call.peers.values()) {
    const sender = peer.pc.getSenders().find((s) => s.track && s.track.kind === "video");
    if (sender) await sender.replaceTrack(track);
  }
}

$("switch-camera-button").addEventListener("click", async () => {
  const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  if (cameras.length < 2) { status("This device has one camera."); return; }
  const current = call.cameraTrack.getSettings().deviceId;
  const next = cameras[(cameras.findIndex((c) => c.deviceId === current) + 1) % cameras.length];
  const stream = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: next.deviceId } } });
  const track = stream.getVideoTracks()[0];
  call.local.removeTrack(call.cameraTrack);
  call.cameraTrack.stop();
  call.cameraTrack = track;
  call.local.addTrack(track);
  $("local-video").srcObject = call.local;
  if (!call.screenTrack) await sendVideo(track);
});

async function stopSharing(button) {
  if (!call.screenTrack) return;
  call.screenTrack.stop(); // stop() fires no "ended": the camera is put back here
  call.screenTrack = null;
  await sendVideo(call.cameraTrack);
  toggle(button, false, "Stop sharing", "Share screen");
}

if ($("share-button")) {
  $("share-button").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    if (call.screenTrack) { await stopSharing(button); return; }
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
      call.screenTrack = stream.getVideoTracks()[0];
    } catch (error) {
      return; // the user chose not to share
    }
    await sendVideo(call.screenTrack);
    toggle(button, true, "Stop sharing", "Share screen");
    // The browser's own "Stop sharing" bar ends the track.
    call.screenTrack.addEventListener("ended", () => stopSharing(button));
  });
}

function endCall(message) {
  call.leaving = true;
  clearTimeout(call.refreshTimer);
  for (const id of [...call.peers.keys()]) closePeer(id);
  if (call.local) call.local.getTracks().forEach((track) => track.stop());
  status(message);
  for (const button of root.querySelectorAll("button")) button.disabled = button.id !== "join-button";
}

async function leave() {
  if (call.leaving) return;
  fetch(`${roomUrl}/leave`, { method: "POST", keepalive: true, headers: { "X-Room-Token": call.token } });
  endCall("You have left the call.");
}
$("leave-button").addEventListener("click", leave);
window.addEventListener("pagehide", () => { if (call.token) leave(); });

// ---------------------------------------------------------------- the clinician's tools

function showWaiting(people) {
  const list = $("waiting-list");
  if (!list) return;
  list.replaceChildren();
  if (!people.length) {
    const empty = document.createElement("li");
    empty.className = "muted";
    empty.textContent = "Nobody is waiting.";
    list.append(empty);
    return;
  }
  for (const person of people) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${person.name} (${person.role})`;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Admit";
    button.dataset.participantId = person.participant_id;
    button.addEventListener("click", async () => {
      button.disabled = true;
      await roomFetch(`/admit/${person.participant_id}`, { method: "POST", body: {} });
    });
    item.append(name, button);
    list.append(item);
  }
}

async function askWorker(kind, label) {
  const response = await roomFetch("/worker", { method: "POST", body: { kind } });
  const answer = await response.json();
  $("worker-status").textContent = response.ok ? label : (answer.detail || "The media worker could not be asked.");
  return response.ok;
}

if ($("capture-button")) {
  $("capture-button").addEventListener("click", () => askWorker("capture", "Taking stills of the patient…"));
}
document.body.addEventListener("htmx:afterSwap", () => {
  // Consent given during the call brings a new (disabled) record button: usable once in the call.
  if (call.token && !call.leaving && $("record-button")) $("record-button").disabled = false;
});
document.addEventListener("click", async (event) => {
  // The recording panel is swapped by htmx when consent changes, so its button is found late.
  const button = event.target.closest("#record-button");
  if (!button) return;
  const recording = button.getAttribute("aria-pressed") === "true";
  if (await askWorker(recording ? "stop" : "record", recording ? "Recording stopped." : "Recording…")) {
    toggle(button, !recording, "Stop recording", "Start recording");
  }
});

if ($("still-button")) {
  $("still-button").addEventListener("click", () => {
    const video = $("remote-video");
    if (!video.videoWidth) { $("still-status").textContent = "No picture from the patient yet."; return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(async (blob) => {
      const form = new FormData();
      form.append("image", blob, "still.jpg");
      const response = await fetch(root.dataset.goniometryUrl, {
        method: "POST", body: form, headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      });
      const line = $("still-status");
      if (!response.ok) {
        const { errors = {} } = await response.json().catch(() => ({}));
        line.textContent = ["The still could not be saved.", ...Object.values(errors).flat()].join(" ");
        return;
      }
      const { mark_url: markUrl } = await response.json();
      const link = document.createElement("a");
      link.href = markUrl;
      link.target = "_blank"; // the marking page opens beside the call, which goes on
      link.rel = "noopener";
      link.textContent = "mark the angles";
      line.replaceChildren("Still saved for goniometry: ", link, ".");
    }, "image/jpeg", 0.92);
  });
}

// ---------------------------------------------------------------- the patient's side of a capture

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") { resolve(); return; }
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
  });
}

async function sendToWorker({ media_session_id: id, token, kind }) {
  // The media worker takes one full offer (it does not trickle), so gather first.
  const pc = new RTCPeerConnection({ iceServers: call.iceServers });
  const tracks = kind === "record" ? call.local.getTracks() : [call.cameraTrack];
  for (const track of tracks) pc.addTransceiver(track, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "X-Media-Token": token, "Content-Type": "application/json" };
  const url = `/video/media-sessions/${id}`;
  await fetch(`${url}/offer`, { method: "POST", headers, body: JSON.stringify({ sdp: pc.localDescription.sdp }) });
  let state = await (await fetch(`${url}?until=answered&wait=20`, { headers })).json();
  if (state.answer) await pc.setRemoteDescription({ type: "answer", sdp: state.answer });
  while (!["finished", "failed"].includes(state.status) && !call.leaving) {
    state = await (await fetch(`${url}?until=done&wait=20`, { headers })).json();
  }
  pc.close();
}
