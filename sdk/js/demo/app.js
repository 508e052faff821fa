// The demo chat page of rtmd, on the RTS web SDK (./rts.mjs, copied next
// to this file by the SDK's build). rtmd serves this directory at /demo/
// (demo_dir) and two helpers beside it:
//   config.json  {app_id, ws_port, wss_port, path}: the endpoint is built
//                from the page's own host name;
//   token?user=  {token}: a login token for that user. A real app gets it
//                from its app server (getrtstoken), never from an open URL.
//
// What the page does: log in with a name; everyone enters the room
// `lobby`, whose members are the "Online" list; chat peer to peer with a
// clicked user; join named rooms and chat there; send a small file as a
// binary message; show a logout by a duplicate login.
//
// A file is sent as one binary message (at most 64 KiB in all):
//   bytes 0-3   "RTSF" (0x52 0x54 0x53 0x46)
//   byte  4     N, the length of the file name in UTF-8 bytes (1..255)
//   bytes 5..   the file name (N bytes of UTF-8)
//   the rest    the file's bytes (at most 60 KiB = 61,440)
// A binary message without that header is offered for download as
// "message.bin".

import { createRTS, destroyRTS, LOGOUT_REASON, USER_OFFLINE_REASON } from './rts.mjs';

const LOBBY = 'lobby';
const ID_RE = /^[a-zA-Z0-9_@.\-]{1,128}$/;
const FILE_MAGIC = [0x52, 0x54, 0x53, 0x46];
const FILE_MAX = 60 * 1024;
const NAME_MAX = 255;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  loginForm: $('login-form'),
  loginName: $('login-name'),
  loginButton: $('login-button'),
  app: $('app'),
  online: $('online-list'),
  roomForm: $('room-form'),
  roomName: $('room-name'),
  conversations: $('conversations'),
  logout: $('logout-button'),
  title: $('conv-title'),
  members: $('room-members'),
  messages: $('messages'),
  messageForm: $('message-form'),
  messageInput: $('message-input'),
  sendButton: $('send-button'),
  fileForm: $('file-form'),
  fileInput: $('file-input'),
  sendFileButton: $('send-file-button'),
  leaveRoom: $('leave-room-button'),
  error: $('error'),
};

// The session: one RTS instance per login (a new login makes a new one).
let rts = null;
let me = null;
const rooms = new Map(); // roomId -> {room, members: Set}
const online = new Set(); // lobby members other than me
// Conversations: key "user:<id>" or "room:<id>" -> {kind, id, items, unread}
const conversations = new Map();
let current = null; // key of the conversation shown

// ------------------------------------------------------------ helpers

function setStatus(text, { loggedOut = false, reason = '' } = {}) {
  ui.status.textContent = text;
  ui.status.classList.toggle('logged-out', loggedOut);
  if (reason) ui.status.dataset.reason = reason;
  else delete ui.status.dataset.reason;
}

function showError(e) {
  ui.error.textContent = e ? String(e.message || e) : '';
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.description || `${url}: HTTP ${res.status}`);
  return body;
}

function endpointOf(cfg) {
  const secure = location.protocol === 'https:' && cfg.wss_port;
  const port = secure ? cfg.wss_port : cfg.ws_port;
  if (!port) throw new Error('rtmd has no WebSocket listener for this page');
  // location.hostname keeps the brackets of an IPv6 address.
  return `${secure ? 'wss' : 'ws'}://${location.hostname}:${port}${cfg.path}`;
}

// ------------------------------------------------------------ files

function encodeFile(name, bytes) {
  let nameBytes = new TextEncoder().encode(name);
  while (nameBytes.length > NAME_MAX) {
    name = name.slice(0, -1);
    nameBytes = new TextEncoder().encode(name);
  }
  const out = new Uint8Array(5 + nameBytes.length + bytes.length);
  out.set(FILE_MAGIC, 0);
  out[4] = nameBytes.length;
  out.set(nameBytes, 5);
  out.set(bytes, 5 + nameBytes.length);
  return out.buffer;
}

// {name, bytes} of a received binary message.
function decodeFile(buffer) {
  const b = new Uint8Array(buffer);
  if (b.length >= 5 && FILE_MAGIC.every((m, i) => b[i] === m) && b[4] > 0 && b.length >= 5 + b[4]) {
    try {
      const name = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(5, 5 + b[4]));
      return { name: safeFileName(name), bytes: b.slice(5 + b[4]) };
    } catch {
      /* not a file header after all */
    }
  }
  return { name: 'message.bin', bytes: b.slice() };
}

// A name to save a file as: no directories, no control characters.
function safeFileName(name) {
  const base = name.split(/[\\/]/).pop().replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return base && base !== '.' && base !== '..' ? base : 'file.bin';
}

// ------------------------------------------------------------ conversations

function conversation(kind, id) {
  const key = `${kind}:${id}`;
  let c = conversations.get(key);
  if (!c) {
    c = { key, kind, id, items: [], unread: 0 };
    conversations.set(key, c);
    renderConversations();
  }
  return c;
}

// item: {from, text} | {from, file: {name, bytes}} | {system: text}
function addItem(c, item) {
  c.items.push(item);
  if (current === c.key) {
    ui.messages.append(renderItem(item));
    ui.messages.scrollTop = ui.messages.scrollHeight;
  } else {
    c.unread += 1;
    if (current === null) select(c.key);
    else renderConversations();
  }
}

function renderItem(item) {
  const li = document.createElement('li');
  li.dataset.testid = 'message';
  if (item.system) {
    li.className = 'system';
    li.dataset.kind = 'system';
    li.textContent = item.system;
    return li;
  }
  li.dataset.from = item.from;
  if (item.from === me) li.className = 'mine';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = `${item.from === me ? `${me} (you)` : item.from}:`;
  li.append(from);
  if (item.file) {
    li.dataset.kind = 'file';
    const a = document.createElement('a');
    a.dataset.testid = 'file-link';
    a.download = item.file.name;
    a.href = URL.createObjectURL(new Blob([item.file.bytes], { type: 'application/octet-stream' }));
    a.textContent = `${item.file.name} (${item.file.bytes.length} bytes)`;
    li.append(a);
  } else {
    li.dataset.kind = 'text';
    const text = document.createElement('span');
    text.className = 'text';
    text.dataset.testid = 'message-text';
    text.textContent = item.text;
    li.append(text);
  }
  return li;
}

function renderConversations() {
  ui.conversations.replaceChildren(...[...conversations.values()].map((c) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testid = 'conversation';
    b.dataset.conv = c.key;
    b.textContent = c.kind === 'room' ? `# ${c.id}` : c.id;
    if (c.key === current) b.setAttribute('aria-current', 'true');
    if (c.unread) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.dataset.testid = 'unread';
      badge.textContent = String(c.unread);
      badge.setAttribute('aria-label', `${c.unread} unread`);
      b.append(badge);
    }
    b.addEventListener('click', () => select(c.key));
    li.append(b);
    return li;
  }));
}

function renderMembers() {
  const c = conversations.get(current);
  const r = c && c.kind === 'room' ? rooms.get(c.id) : null;
  ui.members.hidden = !r;
  if (r) {
    const others = [...r.members].sort();
    ui.members.textContent = `In this room: ${[`${me} (you)`, ...others].join(', ')}`;
  }
}

function select(key) {
  current = key;
  const c = conversations.get(key);
  c.unread = 0;
  ui.title.textContent = c.kind === 'room' ? `Room ${c.id}` : `Chat with ${c.id}`;
  ui.title.dataset.conv = key;
  ui.messages.replaceChildren(...c.items.map(renderItem));
  ui.messages.scrollTop = ui.messages.scrollHeight;
  const inRoom = c.kind !== 'room' || rooms.has(c.id);
  for (const el of [ui.messageInput, ui.sendButton, ui.fileInput, ui.sendFileButton]) el.disabled = !inRoom;
  ui.leaveRoom.hidden = !(c.kind === 'room' && rooms.has(c.id) && c.id !== LOBBY);
  renderConversations();
  renderMembers();
  showError(null);
}

function renderOnline() {
  ui.online.replaceChildren(...[...online].sort().map((u) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testid = 'online-user';
    b.dataset.user = u;
    b.textContent = u;
    b.setAttribute('aria-label', `Chat with ${u}`);
    b.addEventListener('click', () => select(conversation('user', u).key));
    li.append(b);
    return li;
  }));
}

// ------------------------------------------------------------ rooms

async function joinRoom(roomId, { show = true } = {}) {
  if (rooms.has(roomId)) {
    if (show) select(conversation('room', roomId).key);
    return;
  }
  const room = rts.createRTSRoom(roomId);
  const entry = { room, members: new Set() };
  const c = conversation('room', roomId);
  room.on('onUserJoined', ({ userId }) => {
    entry.members.add(userId);
    if (roomId === LOBBY) {
      online.add(userId);
      renderOnline();
    } else {
      addItem(c, { system: `${userId} joined` });
    }
    if (current === c.key) renderMembers();
  });
  room.on('onUserLeave', (userId, reason) => {
    entry.members.delete(userId);
    if (roomId === LOBBY) {
      online.delete(userId);
      renderOnline();
    } else {
      const how = reason === USER_OFFLINE_REASON.DROPPED ? 'dropped' : 'left';
      addItem(c, { system: `${userId} ${how}` });
    }
    if (current === c.key) renderMembers();
  });
  room.on('onRoomMessageReceived', (from, text) => addItem(c, { from, text }));
  room.on('onRoomBinaryMessageReceived', (from, buffer) => addItem(c, { from, file: decodeFile(buffer) }));
  rooms.set(roomId, entry);
  try {
    await room.joinRoom();
  } catch (e) {
    rooms.delete(roomId);
    room.destroy();
    throw e;
  }
  if (show) select(c.key);
  else if (current === c.key) select(c.key);
}

async function leaveRoom(roomId) {
  const entry = rooms.get(roomId);
  if (!entry) return;
  rooms.delete(roomId);
  try {
    await entry.room.leaveRoom();
  } finally {
    entry.room.destroy();
  }
  const c = conversation('room', roomId);
  addItem(c, { system: 'You left this room' });
  if (current === c.key) select(c.key);
}

// ------------------------------------------------------------ session

function resetSession() {
  if (rts) destroyRTS(rts);
  rts = null;
  rooms.clear();
  online.clear();
  conversations.clear();
  current = null;
  ui.messages.replaceChildren();
  ui.conversations.replaceChildren();
  ui.online.replaceChildren();
  ui.members.hidden = true;
  ui.title.textContent = 'Pick someone online or join a room';
  delete ui.title.dataset.conv;
}

function showLoggedOut(text, reason) {
  resetSession();
  me = null;
  ui.app.hidden = true;
  ui.loginForm.hidden = false;
  ui.loginButton.disabled = false;
  document.body.dataset.state = 'logged-out';
  setStatus(text, { loggedOut: true, reason });
}

async function login(name) {
  if (!ID_RE.test(name)) throw new Error('A name is 1-128 characters of a-z A-Z 0-9 _ @ - .');
  const cfg = await getJson('config.json');
  const { token } = await getJson(`token?user=${encodeURIComponent(name)}`);
  resetSession();
  rts = createRTS(cfg.app_id, { endpoint: endpointOf(cfg) });
  rts.on('onMessageReceived', (from, text) => addItem(conversation('user', from), { from, text }));
  rts.on('onBinaryMessageReceived', (from, buffer) =>
    addItem(conversation('user', from), { from, file: decodeFile(buffer) }));
  rts.on('onLogout', (reason) => {
    if (reason === LOGOUT_REASON.DUPLICATE_LOGIN) {
      showLoggedOut(`Logged out: ${name} logged in somewhere else (duplicate login).`, 'duplicate_login');
    } else if (reason === LOGOUT_REASON.KICKED) {
      showLoggedOut('Logged out: the server kicked this session.', 'kicked');
    } else {
      showLoggedOut('Logged out.', 'logout');
    }
  });
  await rts.login(token, name);
  me = name;
  await joinRoom(LOBBY, { show: false });
  ui.loginForm.hidden = true;
  ui.app.hidden = false;
  document.body.dataset.state = 'logged-in';
  document.body.dataset.user = name;
  setStatus(`Logged in as ${name}.`);
}

// ------------------------------------------------------------ sending

async function sendText(text) {
  const c = conversations.get(current);
  if (!c || !text) return;
  if (c.kind === 'user') await rts.sendMessage(c.id, text);
  else await rooms.get(c.id).room.sendRoomMessage(text);
  addItem(c, { from: me, text });
}

async function sendFile(file) {
  const c = conversations.get(current);
  if (!c || !file) return;
  if (file.size > FILE_MAX) throw new Error(`${file.name} is ${file.size} bytes: at most ${FILE_MAX} may be sent`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  const name = safeFileName(file.name);
  const message = encodeFile(name, bytes);
  if (c.kind === 'user') await rts.sendBinaryMessage(c.id, message);
  else await rooms.get(c.id).room.sendRoomBinaryMessage(message);
  addItem(c, { from: me, file: { name, bytes } });
}

// ------------------------------------------------------------ wiring

function guarded(fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    showError(null);
    try {
      await fn();
    } catch (e) {
      showError(e);
    }
  };
}

ui.loginForm.addEventListener('submit', guarded(async () => {
  ui.loginButton.disabled = true;
  setStatus('Logging in...');
  try {
    await login(ui.loginName.value.trim());
  } catch (e) {
    resetSession();
    setStatus('Not logged in.');
    throw e;
  } finally {
    ui.loginButton.disabled = false;
  }
}));

ui.roomForm.addEventListener('submit', guarded(async () => {
  const id = ui.roomName.value.trim();
  if (!ID_RE.test(id)) throw new Error('A room name is 1-128 characters of a-z A-Z 0-9 _ @ - .');
  await joinRoom(id);
  ui.roomName.value = '';
}));

ui.messageForm.addEventListener('submit', guarded(async () => {
  const text = ui.messageInput.value;
  await sendText(text);
  ui.messageInput.value = '';
}));

ui.fileForm.addEventListener('submit', guarded(async () => {
  await sendFile(ui.fileInput.files[0]);
  ui.fileInput.value = '';
}));

ui.leaveRoom.addEventListener('click', guarded(async () => {
  const c = conversations.get(current);
  if (c && c.kind === 'room') await leaveRoom(c.id);
}));

ui.logout.addEventListener('click', guarded(async () => {
  if (rts) await rts.logout();
}));

document.body.dataset.state = 'logged-out';
// Lets a test (or a person) see the script loaded under the page's CSP.
document.body.dataset.ready = 'true';
