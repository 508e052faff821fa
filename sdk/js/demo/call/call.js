// The 1v1 call demo page of rtmd, on the RTS web SDK (../rts.mjs) and
// RealTimeCat sessions: rtmd serves this directory at /demo/call/.
//
// What the page does: enter a session name; the page asks the demo backend
// for a token of the session labelled with that name (GET
// /tokens/<name>, created when missing; unauthenticated, for demos only:
// a real app gets tokens from its own server, which calls the REST API),
// reads /demo/config.json for the app id, the WebSocket port and whether
// the demo backend runs for this project (rtcat_demo), takes the
// camera and microphone (getUserMedia) and calls rts.joinSession(token).
// When a second browser joins the same session, the two set up an
// RTCPeerConnection; the session's room carries the signalling, and the
// media and a data channel ("chat") go peer to peer. A third member is
// ignored (one to one).
//
// Signalling: room messages of the session, JSON text, each with
// "call": 1 and "to": the uid (token uuid) of the peer it is for; other
// members ignore it.
//   {"call":1, "type":"offer",  "to":uid, "sdp":"<SDP of the offer>"}
//   {"call":1, "type":"answer", "to":uid, "sdp":"<SDP of the answer>"}
//   {"call":1, "type":"candidate", "to":uid,
//    "candidate": {"candidate":"...", "sdpMid":"0", "sdpMLineIndex":0}}
//    (candidate null: no more candidates)
// Who offers: of the two, the member whose uid sorts first (so both sides
// agree without a race); the other answers. The offerer makes the data
// channel. When the peer leaves the room (onUserLeave) the call ends and
// the page waits for the next one.

import { createRTS, destroyRTS, LOGOUT_REASON } from '../rts.mjs';

const NAME_RE = /^[a-zA-Z0-9_.-]{1,64}$/;
const SIGNAL_MAX = 60000; // bytes of one signalling message (a room message is at most 64 KiB)

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  joinForm: $('join-form'),
  sessionName: $('session-name'),
  joinButton: $('join-button'),
  call: $('call'),
  sessionInfo: $('session-info'),
  localVideo: $('local-video'),
  remoteVideo: $('remote-video'),
  remoteCaption: $('remote-caption'),
  pcState: $('pc-state'),
  dcState: $('dc-state'),
  dcLog: $('dc-log'),
  dcForm: $('dc-form'),
  dcInput: $('dc-input'),
  dcSend: $('dc-send'),
  leave: $('leave-button'),
  error: $('error'),
};

let rts = null;
let room = null;
let me = null; // my uid (token uuid)
let localStream = null;
// The call with the peer: {uid, pc, dc, pending: [candidates before the remote description]}
let call = null;

function setStatus(text, state) {
  ui.status.textContent = text;
  if (state) document.body.dataset.state = state;
}

function showError(text) {
  ui.error.textContent = text || '';
}

function setPcState(state) {
  ui.pcState.textContent = state;
  ui.pcState.dataset.state = state;
  document.body.dataset.pcState = state;
}

function setDcState(state) {
  ui.dcState.textContent = state;
  ui.dcState.dataset.state = state;
  const open = state === 'open';
  ui.dcInput.disabled = !open;
  ui.dcSend.disabled = !open;
}

function log(from, text) {
  const li = document.createElement('li');
  li.dataset.from = from;
  li.dataset.testid = 'dc-message';
  const who = from === 'me' ? 'me' : from === 'peer' ? 'peer' : '';
  li.textContent = who ? `${who}: ${text}` : text;
  ui.dcLog.append(li);
  ui.dcLog.scrollTop = ui.dcLog.scrollHeight;
}

function endpointOf(cfg) {
  const secure = location.protocol === 'https:' && cfg.wss_port;
  const port = secure ? cfg.wss_port : cfg.ws_port;
  if (!port) throw new Error('rtmd has no WebSocket listener for this page');
  return `${secure ? 'wss' : 'ws'}://${location.hostname}:${port}${cfg.path || '/service/websocket'}`;
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    /* not JSON */
  }
  if (!res.ok) {
    const why = body && body.description ? body.description : `HTTP ${res.status}`;
    throw new Error(`${url}: ${why}`);
  }
  return body;
}

// ------------------------------------------------------------ signalling

function signal(msg) {
  if (!room || !call) return;
  const text = JSON.stringify({ call: 1, to: call.uid, ...msg });
  if (text.length > SIGNAL_MAX) {
    showError('A signalling message is too large for a room message.');
    return;
  }
  room.sendRoomMessage(text).catch((e) => showError(`Signalling failed: ${e.message} (${e.code})`));
}

function onSignal(from, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    return; // not ours
  }
  if (!msg || msg.call !== 1 || msg.to !== me) return;
  if (call && call.uid !== from) return; // one to one: someone else
  if (!call) startCall(from);
  handleSignal(msg).catch((e) => showError(`Call setup failed: ${e.message}`));
}

async function handleSignal(msg) {
  const c = call;
  if (msg.type === 'offer' && typeof msg.sdp === 'string') {
    await c.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await flushCandidates(c);
    const answer = await c.pc.createAnswer();
    await c.pc.setLocalDescription(answer);
    signal({ type: 'answer', sdp: c.pc.localDescription.sdp });
  } else if (msg.type === 'answer' && typeof msg.sdp === 'string') {
    await c.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    await flushCandidates(c);
  } else if (msg.type === 'candidate') {
    if (!c.pc.remoteDescription) c.pending.push(msg.candidate);
    else await addCandidate(c, msg.candidate);
  }
}

async function addCandidate(c, candidate) {
  if (candidate && typeof candidate === 'object') await c.pc.addIceCandidate(candidate);
  else await c.pc.addIceCandidate();
}

async function flushCandidates(c) {
  const pending = c.pending;
  c.pending = [];
  for (const cand of pending) await addCandidate(c, cand);
}

// ------------------------------------------------------------ the call

function attachChannel(c, dc) {
  c.dc = dc;
  setDcState(dc.readyState);
  dc.onopen = () => {
    setDcState('open');
    log('system', 'Data channel open.');
  };
  dc.onclose = () => setDcState('closed');
  dc.onmessage = (e) => {
    if (typeof e.data === 'string') log('peer', e.data);
  };
}

// A peer connection with uid; the one whose uid sorts first offers.
function startCall(uid) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const c = { uid, pc, dc: null, pending: [] };
  call = c;
  document.body.dataset.peer = uid;
  ui.remoteCaption.textContent = `Peer ${uid}`;
  setPcState(pc.connectionState);
  pc.onconnectionstatechange = () => {
    if (call === c) setPcState(pc.connectionState);
  };
  pc.onicecandidate = (e) => {
    if (call !== c) return;
    signal({ type: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : null });
  };
  pc.ontrack = (e) => {
    if (call !== c) return;
    ui.remoteVideo.srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  pc.ondatachannel = (e) => {
    if (call === c) attachChannel(c, e.channel);
  };
  if (localStream) {
    for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
  }
  const offerer = me < uid;
  if (offerer) {
    if (!localStream) {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    attachChannel(c, pc.createDataChannel('chat'));
    (async () => {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      signal({ type: 'offer', sdp: pc.localDescription.sdp });
    })().catch((e) => showError(`Call setup failed: ${e.message}`));
  }
  log('system', offerer ? `Calling ${uid}…` : `${uid} is calling…`);
}

function endCall(why) {
  const c = call;
  if (!c) return;
  call = null;
  if (c.dc) c.dc.close();
  c.pc.close();
  ui.remoteVideo.srcObject = null;
  ui.remoteCaption.textContent = 'Waiting for someone to join…';
  delete document.body.dataset.peer;
  setPcState('closed');
  setDcState('none');
  if (why) log('system', why);
}

// ------------------------------------------------------------ session

async function join(name) {
  showError('');
  ui.joinButton.disabled = true;
  setStatus(`Joining ${name}…`, 'joining');
  try {
    const cfg = await getJson('../config.json');
    if (!cfg.rtcat_demo) {
      throw new Error('the demo project has no RealTimeCat demo backend (set rtcat_apikey, rtcat_secret and rtcat_demo = 1 on it)');
    }
    const token = await getJson(`/tokens/${encodeURIComponent(name)}`);
    if (!token || typeof token.uuid !== 'string') throw new Error('the demo backend answered no token');
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      ui.localVideo.srcObject = localStream;
    } catch (e) {
      localStream = null;
      showError(`No camera or microphone (${e.name}): the call carries the peer's media and the data channel only.`);
    }
    const mine = createRTS(cfg.app_id, { endpoint: endpointOf(cfg) });
    rts = mine;
    rts.on('onLogout', (reason) => {
      if (rts !== mine) return; // our own leave()
      const why = reason === LOGOUT_REASON.SESSION_CLOSED ? 'the session was closed'
        : reason === LOGOUT_REASON.DUPLICATE_LOGIN ? 'the token was used elsewhere' : 'logged out';
      leave(`Left the session: ${why}.`);
    });
    room = await rts.joinSession(token.uuid);
    me = rts.sessionInfo.uid;
    room.on('onUserJoined', ({ userId }) => {
      if (!call && rts.sessionInfo.type === 'pub') startCall(userId);
    });
    room.on('onUserLeave', (userId) => {
      if (call && call.uid === userId) endCall(`${userId} left.`);
    });
    room.on('onRoomMessageReceived', onSignal);
  } catch (e) {
    leave(null);
    showError(`Cannot join ${name}: ${e.message}${e.code ? ` (${e.code})` : ''}`);
    return;
  }
  const info = rts.sessionInfo;
  document.body.dataset.uid = info.uid;
  document.body.dataset.session = info.session;
  ui.sessionInfo.textContent = `Session ${name} (${info.session}); you are ${info.uid} (${info.type} token).`;
  ui.joinForm.hidden = true;
  ui.call.hidden = false;
  setStatus(`In session ${name}.${info.type === 'sub' ? ' Receive-only token: cannot call.' : ''}`, 'joined');
}

function leave(why) {
  endCall(null);
  if (rts) {
    const r = rts;
    rts = null;
    room = null;
    r.logout().catch(() => {}).finally(() => destroyRTS(r));
  }
  if (localStream) {
    for (const track of localStream.getTracks()) track.stop();
    localStream = null;
  }
  ui.localVideo.srcObject = null;
  me = null;
  delete document.body.dataset.uid;
  delete document.body.dataset.session;
  ui.call.hidden = true;
  ui.joinForm.hidden = false;
  ui.joinButton.disabled = false;
  setPcState('new');
  setDcState('none');
  ui.dcLog.replaceChildren();
  setStatus(why || 'Enter a session name to start.', 'idle');
}

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.sessionName.value.trim();
  if (!NAME_RE.test(name)) {
    showError('A session name is 1-64 characters of a-z A-Z 0-9 _ - .');
    return;
  }
  join(name);
});

ui.dcForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.dcInput.value;
  if (!text || !call || !call.dc || call.dc.readyState !== 'open') return;
  call.dc.send(text);
  log('me', text);
  ui.dcInput.value = '';
});

ui.leave.addEventListener('click', () => leave('You left the session.'));

setPcState('new');
setDcState('none');
document.body.dataset.state = 'idle';
document.body.dataset.ready = 'true';
