// A small HTTP client for the REST API of a Rafting cluster, used by the CLI and by process-level tests.
//
// It asks the nodes in order and takes the first answer. Redirects to the leader (307) are followed by fetch,
// which re-sends the method and the JSON body. A node that cannot be reached, or that knows no leader (503),
// is skipped; with `retryForMs` the client keeps trying while some node says no leader is known yet, which is
// what a cluster in the middle of an election answers.

import type {
  Consistency,
  DeleteResult,
  KvValue,
  MemberAddress,
  MemberRole,
  MembersResult,
  NodeStatus,
} from '../node/api.js';

/** A request that got no usable answer. `code` is the server's error code, or one of the client's own. */
export class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The HTTP status of the answer, when there was one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface RaftingClientOptions {
  /** Time budget of one HTTP request, redirects included. */
  readonly requestTimeoutMs?: number;
  /** How long to keep asking while the nodes answer that no leader is known (503). 0: ask each node once. */
  readonly retryForMs?: number;
  /** Pause between two rounds over the nodes while retrying. */
  readonly retryDelayMs?: number;
  readonly fetch?: typeof fetch;
}

/** The answer of one node to GET /status. */
export type NodeStatusResult =
  { readonly url: string; readonly status: NodeStatus } | { readonly url: string; readonly error: string };

const defaultRequestTimeoutMs = 10_000;
const defaultStatusTimeoutMs = 1000;
const defaultRetryDelayMs = 200;

export class RaftingClient {
  readonly urls: readonly string[];
  private readonly requestTimeoutMs: number;
  private readonly retryForMs: number;
  private readonly retryDelayMs: number;
  private readonly fetch: typeof fetch;

  /** `urls`: the base URLs of the nodes' REST APIs, e.g. `http://127.0.0.1:8081`, tried in this order. */
  constructor(urls: readonly string[], options: RaftingClientOptions = {}) {
    if (urls.length === 0) throw new TypeError('RaftingClient needs the URL of at least one node');
    this.urls = urls.map(normalizeBaseUrl);
    this.requestTimeoutMs = options.requestTimeoutMs ?? defaultRequestTimeoutMs;
    this.retryForMs = options.retryForMs ?? 0;
    this.retryDelayMs = options.retryDelayMs ?? defaultRetryDelayMs;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  async put(key: string, value: string): Promise<KvValue> {
    const response = await this.send('PUT', kvPath(key), { value });
    return (await this.answer(response)) as KvValue;
  }

  /** Resolves null when the key does not exist. */
  async get(key: string, consistency: Consistency = 'linearizable'): Promise<KvValue | null> {
    const response = await this.send('GET', `${kvPath(key)}?consistency=${consistency}`);
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    return (await this.answer(response)) as KvValue;
  }

  async delete(key: string): Promise<DeleteResult> {
    const response = await this.send('DELETE', kvPath(key));
    return (await this.answer(response)) as DeleteResult;
  }

  /** POST /cluster/leader: resolves once `to` leads. */
  async transferLeadership(to: string): Promise<{ leader: string; term: number }> {
    const response = await this.send('POST', '/cluster/leader', { to });
    return (await this.answer(response)) as { leader: string; term: number };
  }

  /** GET /cluster/members: the first node's view of the membership. */
  async members(): Promise<MembersResult> {
    return (await this.answer(await this.send('GET', '/cluster/members'))) as MembersResult;
  }

  /** POST /cluster/members: resolves once the member is added (and, as a voter, promoted). */
  async addMember(id: string, address: MemberAddress, role: MemberRole): Promise<MembersResult> {
    const response = await this.send('POST', '/cluster/members', { id, ...address, role });
    return (await this.answer(response)) as MembersResult;
  }

  async promoteMember(id: string): Promise<MembersResult> {
    const response = await this.send('POST', `/cluster/members/${encodeURIComponent(id)}/promote`);
    return (await this.answer(response)) as MembersResult;
  }

  async removeMember(id: string): Promise<MembersResult> {
    const response = await this.send('DELETE', `/cluster/members/${encodeURIComponent(id)}`);
    return (await this.answer(response)) as MembersResult;
  }

  /** GET /status from every node at once; a node that does not answer within `timeoutMs` is reported down. */
  async status(timeoutMs = defaultStatusTimeoutMs): Promise<NodeStatusResult[]> {
    return Promise.all(
      this.urls.map(async (url): Promise<NodeStatusResult> => {
        try {
          return { url, status: await this.statusOf(url, timeoutMs) };
        } catch (error) {
          return { url, error: error instanceof Error ? error.message : String(error) };
        }
      }),
    );
  }

  /** GET /status from the node at `url`. Rejects with ClientError. */
  async statusOf(url: string, timeoutMs = defaultStatusTimeoutMs): Promise<NodeStatus> {
    let response: Response;
    try {
      response = await this.fetch(`${normalizeBaseUrl(url)}/status`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new ClientError('unreachable', describeFetchFailure(error, timeoutMs));
    }
    const body = await this.answer(response);
    if (!isNodeStatus(body)) throw new ClientError('bad_response', `${url}/status: unexpected answer`);
    return body;
  }

  /**
   * Sends the request to the nodes in order and resolves with the first answer that is not "no leader known".
   * Rejects with ClientError `unavailable` when no node gave one.
   */
  private async send(method: string, path: string, body?: unknown): Promise<Response> {
    const deadline = Date.now() + this.retryForMs;
    while (true) {
      const failures: string[] = [];
      let leaderless = false;
      for (const url of this.urls) {
        const outcome = await this.attempt(url, method, path, body);
        if (outcome instanceof Response) return outcome;
        failures.push(`${url}: ${outcome.reason}`);
        leaderless ||= outcome.leaderless;
      }
      const remainingMs = deadline - Date.now();
      if (!leaderless || remainingMs <= 0) {
        throw new ClientError(
          'unavailable',
          `no node could answer ${method} ${path}: ${failures.join('; ')}`,
        );
      }
      await sleep(Math.min(this.retryDelayMs, remainingMs));
    }
  }

  private async attempt(
    url: string,
    method: string,
    path: string,
    body: unknown,
  ): Promise<Response | { reason: string; leaderless: boolean }> {
    const init: RequestInit = {
      method,
      redirect: 'follow',
      signal: AbortSignal.timeout(this.requestTimeoutMs),
    };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'content-type': 'application/json' };
    }
    let response: Response;
    try {
      response = await this.fetch(`${url}${path}`, init);
    } catch (error) {
      return { reason: describeFetchFailure(error, this.requestTimeoutMs), leaderless: false };
    }
    if (response.status !== 503) return response;
    const message = errorOf(await readJson(response))?.message ?? 'unavailable';
    return { reason: `503 ${message}`, leaderless: true };
  }

  /** The JSON body of a 2xx answer; anything else becomes a ClientError with the server's message. */
  private async answer(response: Response): Promise<unknown> {
    const body = await readJson(response);
    if (response.ok && body !== undefined) return body;
    throw errorFromBody(response, body);
  }
}

function kvPath(key: string): string {
  return `/kv/${encodeURIComponent(key)}`;
}

/** `127.0.0.1:8081` or `http://127.0.0.1:8081/` → `http://127.0.0.1:8081`. */
export function normalizeBaseUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  const parsed = new URL(withScheme);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  return parsed.href.replace(/\/+$/, '');
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { error: { code: 'bad_response', message: `HTTP ${response.status}: ${text.slice(0, 200)}` } };
  }
}

function errorOf(body: unknown): { code: string; message: string } | undefined {
  if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
  const error = body.error;
  if (typeof error !== 'object' || error === null) return undefined;
  const code = 'code' in error && typeof error.code === 'string' ? error.code : 'error';
  const message = 'message' in error && typeof error.message === 'string' ? error.message : code;
  return { code, message };
}

function errorFromBody(response: Response, body: unknown): ClientError {
  const error = errorOf(body);
  if (error !== undefined) return new ClientError(error.code, error.message, response.status);
  return new ClientError(
    'bad_response',
    `HTTP ${response.status} ${response.statusText}`.trim(),
    response.status,
  );
}

function describeFetchFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  const cause =
    error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

function isNodeStatus(body: unknown): body is NodeStatus {
  if (typeof body !== 'object' || body === null) return false;
  const status = body as Record<string, unknown>;
  return (
    typeof status['id'] === 'string' &&
    typeof status['role'] === 'string' &&
    typeof status['term'] === 'number' &&
    typeof status['commitIndex'] === 'number' &&
    typeof status['lastApplied'] === 'number'
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
