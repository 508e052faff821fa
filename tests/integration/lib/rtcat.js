'use strict';
// RealTimeCat REST helpers of the integration tests: requests shaped as
// the RealTimeCat Node SDK (realtimecat-node-sdk 0.4, `request` library)
// sends them -- form-urlencoded bodies without the fields left undefined,
// the X-RTCAT-APIKEY / X-RTCAT-SECRET headers, page / page_size in the
// query -- and JSON bodies as other clients send them.

const http = require('node:http');

// The form body `request` builds ({form: opts}): undefined fields left out.
function formBody(opts) {
  return Object.entries(opts)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
}

// One request; resolves {status, headers, body (text), json (parsed or undefined)}.
//   key/secret: the two headers (null: left out); form: an object sent
//   form-urlencoded; json: an object (or a string) sent as application/json;
//   raw: a body sent as it is with contentType.
function api(port, method, path, { key, secret, form, json, raw, contentType, keepAlive = false } = {}) {
  const headers = {};
  if (key != null) headers['X-RTCAT-APIKEY'] = key;
  if (secret != null) headers['X-RTCAT-SECRET'] = secret;
  let body = null;
  if (form !== undefined) {
    body = formBody(form);
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (json !== undefined) {
    body = typeof json === 'string' ? json : JSON.stringify(json);
    headers['Content-Type'] = 'application/json';
  } else if (raw !== undefined) {
    body = raw;
    if (contentType) headers['Content-Type'] = contentType;
  }
  if (body !== null) headers['Content-Length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, timeout: 10000,
      agent: keepAlive ? undefined : false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

// A client bound to one project's key and secret, with the SDK's calls.
function sdk(port, key, secret) {
  const a = (method, path, opts = {}) => api(port, method, `/v0.4${path}`, { key, secret, ...opts });
  const q = ({ page, page_size } = {}) => {
    if (page && page_size) return `?page=${page}&page_size=${page_size}`;
    if (page_size) return `?page_size=${page_size}`;
    if (page) return `?page=${page}`;
    return '';
  };
  return {
    raw: a,
    createSession: ({ label, data, live_days, type = 'p2p', permanent = false } = {}) =>
      a('POST', '/sessions', { form: { label, data, live_days, type, permanent } }),
    sessions: (opts) => a('GET', `/sessions${q(opts)}`),
    permanentSessions: () => a('GET', '/sessions/permanent'),
    temporarySessions: () => a('GET', '/sessions/nonpermanent'),
    session: (id) => a('GET', `/sessions/${id}`),
    updateSession: ({ session_id, label, permanent, data, live_days }) =>
      a('PATCH', `/sessions/${session_id}`, { form: { session_id, label, permanent, data, live_days } }),
    delSession: (id) => a('DELETE', `/sessions/${id}`),
    createToken: ({ session_id, label, data, live_days, type = 'pub', permanent = false, number = 1 }) =>
      a('POST', `/sessions/${session_id}/tokens`, { form: { session_id, label, data, live_days, type, permanent, number } }),
    tokens: ({ session_id, ...opts }) => a('GET', `/sessions/${session_id}/tokens${q(opts)}`),
    permanentTokens: (id) => a('GET', `/sessions/${id}/tokens/permanent`),
    temporaryTokens: (id) => a('GET', `/sessions/${id}/tokens/nonpermanent`),
    token: (id) => a('GET', `/tokens/${id}`),
    updateToken: ({ token_id, label, permanent, data, live_days }) =>
      a('PATCH', `/tokens/${token_id}`, { form: { token_id, label, permanent, data, live_days } }),
    delToken: (id) => a('DELETE', `/tokens/${id}`),
  };
}

module.exports = { api, formBody, sdk };
