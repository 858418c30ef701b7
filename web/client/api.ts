// JSON calls to the workspace API; a non-2xx answer throws with the server's reason.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T = Record<string, unknown>>(path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
  const r = await fetch(path, {
    method: body === undefined ? (init.method ?? 'GET') : 'POST',
    headers: body === undefined || body instanceof FormData ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
    credentials: 'same-origin',
    ...init,
  });
  const data = (await r.json().catch(() => ({}))) as T & { error?: string };
  if (!r.ok) throw new ApiError(r.status, data.error ?? `HTTP ${r.status}`);
  return data;
}
