// The JSON API and the live event stream. Every POST carries the session's CSRF token.
let csrf = null;

export class ApiError extends Error {
  constructor(status, reason, detail) { super(detail || reason); this.status = status; this.reason = reason; }
}

export function setCsrf(token) { csrf = token; }

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method === "POST") { headers["Content-Type"] = "application/json"; headers["X-CSRF-Token"] = csrf || ""; }
  const resp = await fetch(path, { method, headers, credentials: "same-origin",
                                   body: method === "POST" ? JSON.stringify(body || {}) : undefined });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, data.reason || "error", data.detail || resp.statusText);
  return data;
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body) => call("POST", path, body),
};

// Server-sent events; `on(kind, data)` for each. Reconnects (EventSource does) and
// reports the connection state through `status(true|false)`.
export function liveEvents(on, status) {
  const es = new EventSource("/api/events", { withCredentials: true });
  const kinds = ["hello", "alert", "frame", "duress", "state", "audit", "silent", "rejected", "device", "command", "logout"];
  for (const kind of kinds) es.addEventListener(kind, (e) => on(kind, JSON.parse(e.data)));
  es.onopen = () => status(true);
  es.onerror = () => status(false);
  return es;
}
