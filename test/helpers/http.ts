export interface JsonResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

/** One HTTP request without following redirects; the body is parsed as JSON when there is one. */
export async function request(
  method: string,
  url: string,
  body?: string | object,
  timeoutMs = 10_000,
): Promise<JsonResponse> {
  const init: RequestInit = { method, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(url, init);
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === '' ? undefined : (JSON.parse(text) as unknown),
  };
}
