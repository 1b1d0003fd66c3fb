// The admin REST API, /api/v0: the same endpoints scripts use. The session cookie travels by
// itself (HttpOnly); state-changing calls carry the CSRF token the sign-in returned.

let csrfToken = null;
export function setCsrf(token) { csrfToken = token; }

export class ApiError extends Error {
  constructor(status, messages) {
    super(messages.join("; "));
    this.status = status;
    this.messages = messages;
  }
}

export async function call(method, path, body, { raw = false } = {}) {
  const headers = { "X-Requested-With": "dockyard-ui", Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!["GET", "HEAD"].includes(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(`/api/v0${path}`, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let messages = [`${response.status} ${response.statusText}`];
    try {
      const data = await response.json();
      if (data && Array.isArray(data.errors)) messages = data.errors.map((e) => e.message);
    } catch { /* not JSON */ }
    if (response.status === 401 && !path.startsWith("/session")) window.dispatchEvent(new Event("dockyard:signed-out"));
    throw new ApiError(response.status, messages);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const put = (path, body) => call("PUT", path, body);
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);

export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
}

export const enc = encodeURIComponent;

// Shows an API error beside the form fields it names ("name: ..." or mentions the field),
// else under the form.
export function showErrors(form, error) {
  for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const general = form.querySelector("[data-error-for='_form']");
  const messages = error instanceof ApiError ? error.messages : [String(error)];
  for (const message of messages) {
    let placed = false;
    for (const slot of form.querySelectorAll("[data-error-for]")) {
      const name = slot.dataset.errorFor;
      if (name === "_form") continue;
      if (message.startsWith(`${name}:`) || message.toLowerCase().includes(name.toLowerCase())) {
        slot.textContent = message;
        const input = form.querySelector(`[name='${name}']`);
        if (input) input.setAttribute("aria-invalid", "true");
        placed = true;
        break;
      }
    }
    if (!placed && general) general.textContent = message;
  }
}
