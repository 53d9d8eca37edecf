// avatarlab live avatar page: the same HTTP API programs use, WebRTC for media,
// a WebSocket for events. No build step, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  session: null, pc: null, ws: null, token: null, events: [],
  cameraAvailable: false, videoTx: null, camera: null, drive: "speech",
  llm: false, audioTx: null, mic: null, heard: [], replies: [], previewUrl: null,
};
window.avatarApp = state; // for tests and debugging

function readToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) sessionStorage.setItem("avatarlab-token", decodeURIComponent(m[1]));
  return sessionStorage.getItem("avatarlab-token");
}
state.token = readToken();

function log(message, isError = false) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  if (isError) li.className = "error";
  $("log").prepend(li);
}

function setStatus(text) { $("status").textContent = text; }

async function api(method, path, body, headers = {}) {
  const h = { ...headers };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob)) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers: h, body: payload });
  if (res.status === 401) {
    const t = prompt("This server needs a token:");
    if (t) { state.token = t; sessionStorage.setItem("avatarlab-token", t); return api(method, path, body, headers); }
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  return res.status === 204 ? null : res.json();
}

async function loadAvatars(selectId) {
  const avatars = await api("GET", "/avatars");
  const select = $("avatar-select");
  select.replaceChildren(...avatars.map((a) => {
    const o = document.createElement("option");
    o.value = a.id; o.textContent = `${a.name} (${a.kind})`;
    return o;
  }));
  if (selectId) select.value = selectId;
  $("start").disabled = avatars.length === 0;
  if (avatars.length === 0) $("hint").textContent = "Upload a portrait or a video to start.";
}

function waitIceComplete(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}

function openEvents(id) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const q = state.token ? `?token=${encodeURIComponent(state.token)}` : "";
  const ws = new WebSocket(`${proto}://${location.host}/sessions/${id}/events${q}`);
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    state.events.push(ev);
    if (ev.type === "speech_start") setStatus(`speaking (#${ev.utterance})`);
    else if (ev.type === "speech_end") setStatus("listening");
    else if (ev.type === "peer") setStatus(`media ${ev.state}`);
    else if (ev.type === "error") log(ev.message, true);
    else if (ev.type === "drive") onDrive(ev);
    else if (ev.type === "status" && ev.camera) showCamera(ev);
    else if (ev.type === "closed") { log(`session ended: ${ev.reason}`); teardown(); }
    else if (ev.type === "hearing") $("hearing").textContent = ev.text ? `hearing: ${ev.text} ...` : "hearing ...";
    else if (ev.type === "heard") onHeard(ev);
    else if (ev.type === "reply") addTurn("avatar", ev.text);
    else if (ev.type === "barge_in") log("you interrupted the avatar");
    else if (ev.type === "reply_latency") $("listen-status").textContent = `answered ${ev.seconds.toFixed(2)} s after you stopped speaking`;
  };
  ws.onclose = () => { if (state.ws === ws) state.ws = null; };
  state.ws = ws;
}

async function start() {
  $("start").disabled = true;
  try {
    const session = await api("POST", "/sessions", { avatar: $("avatar-select").value || null });
    state.session = session;
    openEvents(session.id);
    const pc = new RTCPeerConnection({ iceServers: [] });
    state.pc = pc;
    // With camera driving the video goes both ways: the camera is attached later with
    // replaceTrack, so switching needs no new offer.
    state.videoTx = pc.addTransceiver("video", {
      direction: state.cameraAvailable ? "sendrecv" : "recvonly",
    });
    // The microphone goes up the same connection (attached with replaceTrack when
    // listening is on, so switching needs no new offer).
    state.audioTx = pc.addTransceiver("audio", {
      direction: navigator.mediaDevices ? "sendrecv" : "recvonly",
    });
    const stream = new MediaStream();
    pc.ontrack = (ev) => {
      stream.addTrack(ev.track);
      const video = $("avatar");
      if (video.srcObject !== stream) video.srcObject = stream;
      video.play().catch((e) => log(`press play to hear the avatar (${e.message})`));
    };
    pc.onconnectionstatechange = () => setStatus(`media ${pc.connectionState}`);
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceComplete(pc);
    const answer = await api("POST", `/sessions/${session.id}/offer`, {
      sdp: pc.localDescription.sdp, type: "offer",
    });
    await pc.setRemoteDescription(answer);
    for (const id of ["end", "say", "stop", "audio-file"]) $(id).disabled = false;
    $("ask").disabled = !state.llm;
    $("camera").disabled = !state.cameraAvailable;
    await applyVoice();
    await setListen($("listen").value);
    $("hint").textContent = "Type something and press Say.";
    log(`session ${session.id.slice(0, 8)} on ${session.avatar} (${session.width}x${session.height})`);
  } catch (e) {
    log(`could not start: ${e.message}`, true);
    teardown();
  }
}

function teardown() {
  stopCamera();
  stopMic();
  $("hearing").textContent = "";
  setDrive("speech");
  if (state.pc) state.pc.close();
  if (state.ws) state.ws.close();
  state.pc = null; state.ws = null; state.session = null;
  for (const id of ["end", "say", "stop", "audio-file", "camera", "ask"]) $(id).disabled = true;
  state.videoTx = null; state.audioTx = null;
  $("start").disabled = false;
  $("avatar").srcObject = null;
  setStatus("not connected");
  showPreview();
}

async function end() {
  const s = state.session;
  teardown();
  if (s) await api("DELETE", `/sessions/${s.id}`).catch(() => {});
}

async function say() {
  const text = $("text").value.trim();
  if (!text || !state.session) return;
  try {
    const r = await api("POST", `/sessions/${state.session.id}/say`, { text });
    log(`saying #${r.utterance}${r.interrupted ? ` (interrupted #${r.interrupted})` : ""}`);
  } catch (e) { log(e.message, true); }
}

async function sayAudio(file) {
  const form = new FormData();
  form.append("audio", file, file.name);
  try {
    const r = await api("POST", `/sessions/${state.session.id}/say`, form);
    log(`playing ${file.name} (${r.seconds.toFixed(1)} s)`);
  } catch (e) { log(e.message, true); }
}

async function uploadAvatar(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  log(`analysing ${file.name} ...`);
  try {
    const a = await api("POST", "/avatars", form);
    await loadAvatars(a.id);
    log(`avatar ${a.name} ready`);
  } catch (e) { log(e.message, true); }
}

// -- camera driving: the camera's face moves the avatar (POST .../drive) --

function stopCamera() {
  if (state.camera) state.camera.getTracks().forEach((t) => t.stop());
  state.camera = null;
  if (state.videoTx && state.pc && state.pc.connectionState !== "closed") {
    state.videoTx.sender.replaceTrack(null).catch(() => {});
  }
}

function setDrive(mode) {
  state.drive = mode;
  const camera = mode === "camera";
  $("camera").textContent = camera ? "Stop camera" : "Drive with my camera";
  for (const id of ["say", "audio-file"]) $(id).disabled = camera || !state.session;
  if (!camera) $("camera-status").textContent = "Your camera's face moves the avatar.";
  if (state.session) {
    $("hint").textContent = camera
      ? "Your camera moves the avatar; press Stop camera to make it talk again."
      : "Type something and press Say.";
  }
}

function onDrive(ev) {
  setDrive(ev.mode);
  if (ev.mode === "speech") {
    stopCamera();
    if (ev.reason && ev.reason !== "switched to speech") log(`camera driving ended: ${ev.reason}`);
  }
}

function showCamera(ev) {
  if (ev.drive !== "camera") return;
  const c = ev.camera;
  const ms = (v) => (v === null ? "-" : `${Math.round(v)} ms`);
  $("camera-status").textContent =
    `camera ${c.state}: latency ${ms(c.latency_ms_p50)} (p90 ${ms(c.latency_ms_p90)}), ` +
    `${c.frames_rendered} frames`;
}

async function toggleCamera() {
  const button = $("camera");
  button.disabled = true;
  try {
    if (state.drive === "camera") {
      await api("POST", `/sessions/${state.session.id}/drive`, { mode: "speech" });
      stopCamera();
      setDrive("speech");
      return;
    }
    state.camera = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25 } },
    });
    await state.videoTx.sender.replaceTrack(state.camera.getVideoTracks()[0]);
    $("camera-status").textContent = "preparing the avatar for your camera ...";
    const s = await api("POST", `/sessions/${state.session.id}/drive`, { mode: "camera" });
    setDrive(s.drive);
    log("the camera drives the avatar");
  } catch (e) {
    log(`camera: ${e.message}`, true);
    stopCamera();
    setDrive("speech");
  } finally {
    button.disabled = !state.session;
  }
}

// -- talking: the microphone goes to the server, which listens and answers --

function addTurn(who, text) {
  const li = document.createElement("li");
  li.className = who;
  li.textContent = text;
  $("turns").append(li);
  (who === "you" ? state.heard : state.replies).push(text);
  $("turns").scrollTop = $("turns").scrollHeight;
}

function onHeard(ev) {
  $("hearing").textContent = "";
  if (ev.text) addTurn("you", ev.text);
  else $("listen-status").textContent = "I did not catch that: speak again, a little closer.";
}

function stopMic() {
  if (state.mic) state.mic.getTracks().forEach((t) => t.stop());
  state.mic = null;
  if (state.audioTx && state.pc && state.pc.connectionState !== "closed") {
    state.audioTx.sender.replaceTrack(null).catch(() => {});
  }
}

async function startMic() {
  if (state.mic) return;
  if (!navigator.mediaDevices || !state.audioTx) throw new Error("this browser gives no microphone here (use https or localhost)");
  try {
    state.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (e) {
    if (e.name === "NotAllowedError" || e.name === "SecurityError") {
      throw new Error("the microphone is blocked: allow it for this page in the browser's site settings, then choose the mode again");
    }
    if (e.name === "NotFoundError") throw new Error("no microphone found: plug one in, then choose the mode again");
    throw e;
  }
  await state.audioTx.sender.replaceTrack(state.mic.getAudioTracks()[0]);
}

async function setListen(mode) {
  if (!state.session) return;
  try {
    if (mode === "off") stopMic(); else await startMic();
    await api("POST", `/sessions/${state.session.id}/listen`, { mode });
    $("listen-status").textContent = mode === "off"
      ? "Choose echo or chat to talk to the avatar."
      : "Listening: speak to the avatar; speaking while it talks interrupts it.";
  } catch (e) {
    log(`microphone: ${e.message}`, true);
    stopMic();
    $("listen").value = "off";
    await api("POST", `/sessions/${state.session.id}/listen`, { mode: "off" }).catch(() => {});
  }
}

async function ask() {
  const text = $("chat-text").value.trim();
  if (!text || !state.session) return;
  $("chat-text").value = "";
  addTurn("you", text);
  try { await api("POST", `/sessions/${state.session.id}/chat`, { text }); } catch (e) { log(e.message, true); }
}

// -- voices --

async function loadVoices() {
  const voices = await api("GET", "/voices");
  const select = $("voice");
  const groups = new Map();
  for (const v of voices) {
    const key = v.engine === "piper" ? "Piper" : v.language_name || v.language;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(v);
  }
  select.replaceChildren(...[...groups].map(([label, list]) => {
    const g = document.createElement("optgroup");
    g.label = label;
    g.append(...list.map((v) => {
      const o = document.createElement("option");
      o.value = v.id; o.textContent = v.name;
      return o;
    }));
    return g;
  }));
  if (state.defaultVoice) select.value = state.defaultVoice;
}

async function applyVoice() {
  if (!state.session) return;
  try {
    await api("POST", `/sessions/${state.session.id}/voice`, {
      voice: $("voice").value || state.defaultVoice,
      rate_wpm: Number($("rate").value),
      pitch: Number($("pitch").value),
    });
  } catch (e) { log(e.message, true); }
}

// -- the avatar's still before Start --

async function showPreview() {
  const id = $("avatar-select").value;
  if (!id || state.session) return;
  try {
    const h = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    const res = await fetch(`/avatars/${encodeURIComponent(id)}/preview`, { headers: h });
    if (!res.ok) return;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(await res.blob());
    $("avatar").poster = state.previewUrl;
  } catch (e) { /* no preview: the dark stage stays */ }
}

async function loadHealth() {
  const health = await (await fetch("/health")).json();
  state.cameraAvailable = Boolean(health.motion_engine) && Boolean(navigator.mediaDevices);
  $("camera-controls").hidden = !state.cameraAvailable;
  state.llm = Boolean(health.llm);
  state.defaultVoice = health.voice;
  $("chat-row").hidden = !state.llm;
  $("listen").querySelector('option[value="chat"]').disabled = !state.llm;
  $("listen").value = health.listen || "off";
}

$("camera").onclick = toggleCamera;
$("listen").onchange = (e) => setListen(e.target.value);
$("ask").onclick = ask;
$("chat-text").addEventListener("keydown", (e) => { if (e.key === "Enter") ask(); });
for (const id of ["voice", "rate", "pitch"]) $(id).onchange = applyVoice;
$("avatar-select").onchange = showPreview;
$("start").onclick = start;
$("end").onclick = end;
$("say").onclick = say;
$("stop").onclick = () => state.session && api("POST", `/sessions/${state.session.id}/stop`).catch((e) => log(e.message, true));
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) say(); });
$("audio-file").onchange = (e) => { if (e.target.files[0]) sayAudio(e.target.files[0]); e.target.value = ""; };
$("avatar-file").onchange = (e) => { if (e.target.files[0]) uploadAvatar(e.target.files[0]); e.target.value = ""; };
window.addEventListener("pagehide", () => { stopCamera(); stopMic(); if (state.pc) state.pc.close(); if (state.ws) state.ws.close(); });
loadHealth()
  .then(() => loadVoices())
  .catch((e) => log(`cannot reach the server: ${e.message}`, true));
loadAvatars().then(showPreview).catch((e) => log(`cannot list avatars: ${e.message}`, true));
