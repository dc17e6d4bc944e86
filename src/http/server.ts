// The REST API every node serves on its web_address. The routes, statuses and bodies are listed in the README.
//
// Any node serves every request: a follower passes writes to the leader over the peer stream and answers them
// itself once it has applied them (src/node/node.ts), passes leadership transfers and membership changes to the
// leader over HTTP and relays the answer, and answers linearizable reads itself after asking the leader for a read
// index.
// `?redirect=true` asks for a 307 to the leader instead.

import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { addressPattern, idPattern, idRule } from '../config/load.js';
import { maxIdempotencyKeyBytes, type Condition } from '../kv/command.js';
import type { WriteResult } from '../kv/store.js';
import type { Consistency, KvService, MemberRole, WriteOptions } from '../node/api.js';
import { LeaderMovedError, NotLeaderError } from '../node/errors.js';
import { errorBody, HttpError, toHttpError } from './errors.js';

export interface HttpOptions {
  readonly service: KvService;
  readonly logger: Logger;
  /** Keys are 1..maxKeyBytes bytes of UTF-8. */
  readonly maxKeyBytes: number;
  /** Values are at most maxValueBytes bytes of UTF-8. */
  readonly maxValueBytes: number;
  /** Sent as Retry-After with 503 answers. */
  readonly retryAfterSeconds: number;
  /** How long a request waits for a leader to appear before answering 503. */
  readonly leaderWaitMs: number;
  /** How long a forwarded request may take at the leader. */
  readonly forwardTimeoutMs: number;
  /** Where this node reaches another node's REST API to forward to it (default: its web address). */
  readonly forwardAddressOf?: (id: string) => string | undefined;
  /** Served as GET /metrics (Prometheus' text format); without it that route is a 404. */
  readonly metrics?: { readonly contentType: string; text(): Promise<string> };
}

/** Marks a request a follower forwarded, so that it is never forwarded again. */
export const forwardedHeader = 'x-rafting-forwarded-by';
export const servedByHeader = 'x-rafting-served-by';
export const leaderHeader = 'x-rafting-leader';
export const appliedIndexHeader = 'x-rafting-applied-index';
export const idempotencyHeader = 'idempotency-key';
export const replayedHeader = 'idempotency-replayed';
/** Marks a request passed on because the leader moved to carry it out (removing the leader): never twice. */
export const movedHeader = 'x-rafting-leader-moved';

/** Headers of the leader's answer that a forwarding follower passes on. */
const relayedHeaders = [
  'content-type',
  'retry-after',
  'location',
  replayedHeader,
  servedByHeader,
  leaderHeader,
];

export function buildHttpServer(options: HttpOptions) {
  const { service, maxKeyBytes, maxValueBytes } = options;
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // A JSON body holds the value (escaped, so up to 6 bytes per byte in the worst case) and the key.
    bodyLimit: maxValueBytes * 6 + maxKeyBytes * 6 + 1024,
    // Keys arrive percent-encoded in the path: up to 3 characters per byte.
    routerOptions: { maxParamLength: maxKeyBytes * 3 + 16 },
    return503OnClosing: true,
  });

  // `curl -d '{"value":"1"}'` sends no JSON content type; bodies are JSON whatever the header says.
  app.removeContentTypeParser(['text/plain']);
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, body === '' ? undefined : JSON.parse(body as string));
    } catch {
      done(new HttpError(400, 'invalid_json', 'the body is not valid JSON'), undefined);
    }
  });

  app.addHook('onSend', async (_request, reply) => {
    if (!reply.hasHeader(servedByHeader)) void reply.header(servedByHeader, service.id);
    const leader = service.leader();
    if (!reply.hasHeader(leaderHeader) && leader !== null) void reply.header(leaderHeader, leader);
  });

  app.setErrorHandler((error, request, reply) => {
    const httpError = toHttpError(
      error,
      (leader) => {
        const address = service.webAddressOf(leader);
        return address === undefined ? undefined : `http://${address}${request.url}`;
      },
      options.retryAfterSeconds,
    );
    if (httpError.status >= 500 && httpError.code === 'internal')
      request.log.error({ err: error }, 'request failed');
    void reply
      .code(httpError.status)
      .headers(httpError.headers)
      .send({ ...errorBody(httpError.code, httpError.message), ...httpError.extra });
  });

  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  const keyOf = (request: FastifyRequest): string => {
    const key = (request.params as Record<string, string | undefined>)['*'] ?? '';
    checkKey(key, maxKeyBytes);
    return key;
  };

  /**
   * Runs `action` here if this node leads, else on the leader: forwarded (default) or redirected
   * (`?redirect=true`). Waits a bounded time for a leader to appear.
   */
  const onLeader = async <T>(request: FastifyRequest, reply: FastifyReply, action: () => Promise<T>) => {
    try {
      return { local: await action() };
    } catch (e) {
      if (!(e instanceof NotLeaderError)) throw e;
      if (e instanceof LeaderMovedError && e.leader !== null) {
        // This node handed leadership over so that the request can be carried out; the new leader does it.
        if (request.headers[movedHeader] !== undefined) throw new NotLeaderError(e.leader);
        await forward(request, reply, e.leader, { [movedHeader]: '1' });
        return { forwarded: true as const };
      }
      let leader = e.leader ?? (await service.awaitLeader(options.leaderWaitMs));
      if (leader === service.id) return { local: await action() };
      if (leader === null) throw new NotLeaderError(null);
      if (wantsRedirect(request) || request.headers[forwardedHeader] !== undefined)
        throw new NotLeaderError(leader);
      leader = leader as string;
      await forward(request, reply, leader);
      return { forwarded: true as const };
    }
  };

  const forward = async (
    request: FastifyRequest,
    reply: FastifyReply,
    leader: string,
    extraHeaders: Readonly<Record<string, string>> = {},
  ): Promise<void> => {
    const address = (options.forwardAddressOf ?? ((id: string) => service.webAddressOf(id)))(leader);
    if (address === undefined) throw new NotLeaderError(null);
    const headers: Record<string, string> = { ...extraHeaders, [forwardedHeader]: service.id };
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    const key = request.headers[idempotencyHeader];
    if (typeof key === 'string') headers[idempotencyHeader] = key;
    let res: Response;
    try {
      res = await fetch(`http://${address}${request.url}`, {
        method: request.method,
        headers,
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        redirect: 'manual',
        signal: AbortSignal.timeout(options.forwardTimeoutMs),
      });
    } catch (e) {
      const timedOut = e instanceof Error && e.name === 'TimeoutError';
      throw timedOut
        ? new HttpError(504, 'timeout', `the leader ${leader} did not answer in time; the outcome is unknown`)
        : new HttpError(503, 'leader_unreachable', `cannot reach the leader ${leader}`, {
            'Retry-After': String(options.retryAfterSeconds),
          });
    }
    const body = await res.text();
    for (const name of relayedHeaders) {
      const value = res.headers.get(name);
      if (value !== null) void reply.header(name, value);
    }
    await reply.code(res.status).send(body);
  };

  const writeAnswer = (reply: FastifyReply, result: WriteResult) => {
    if (result.replayed === true) void reply.header(replayedHeader, 'true');
    if (!result.ok) {
      const where = result.current === null ? 'does not exist' : `holds index ${result.current.index}`;
      throw new HttpError(
        409,
        'condition_failed',
        `the condition did not hold: ${JSON.stringify(result.key)} ${where}`,
        {},
        {
          current: result.current === null ? null : { key: result.key, ...result.current },
          index: result.index,
        },
      );
    }
    return result.op === 'set'
      ? { key: result.key, value: result.value, index: result.index }
      : { key: result.key, deleted: result.deleted, index: result.index };
  };

  const put = async (
    request: FastifyRequest,
    reply: FastifyReply,
    key: string,
    body: Record<string, unknown>,
  ) => {
    const value = valueOf(body, maxValueBytes);
    const write = { ...conditionOf(body), ...idempotencyOf(request) };
    await redirectUnlessLeader(request);
    return reply.send(writeAnswer(reply, await service.put(key, value, write)));
  };

  /** `?redirect=true` on a node that does not lead: a 307 to the leader instead of passing the write on. */
  const redirectUnlessLeader = async (request: FastifyRequest): Promise<void> => {
    if (!wantsRedirect(request) || service.leader() === service.id) return;
    const leader = service.leader() ?? (await service.awaitLeader(options.leaderWaitMs));
    if (leader !== service.id) throw new NotLeaderError(leader);
  };

  app.put('/kv/*', async (request, reply) => put(request, reply, keyOf(request), objectBody(request.body)));

  // The seed project's call, kept so its README examples work.
  app.post('/command', async (request, reply) => {
    const body = objectBody(request.body);
    const key = body['key'];
    if (typeof key !== 'string') throw new HttpError(400, 'invalid_key', '"key" must be a string');
    checkKey(key, maxKeyBytes);
    return put(request, reply, key, body);
  });

  app.delete('/kv/*', async (request, reply) => {
    const key = keyOf(request);
    const body = request.body === undefined ? {} : objectBody(request.body);
    const query = request.query as Record<string, unknown>;
    const write = { ...conditionOf({ ...queryConditions(query), ...body }), ...idempotencyOf(request) };
    await redirectUnlessLeader(request);
    return reply.send(writeAnswer(reply, await service.delete(key, write)));
  });

  app.get('/kv/*', async (request, reply) => {
    const key = keyOf(request);
    const consistency = consistencyOf(request.query);
    const leader = service.leader();
    if (consistency !== 'stale' && wantsRedirect(request) && leader !== service.id) {
      throw new NotLeaderError(leader ?? (await service.awaitLeader(options.leaderWaitMs)));
    }
    const { found, appliedIndex } = await service.get(key, consistency);
    void reply.header(appliedIndexHeader, String(appliedIndex));
    if (found === null)
      throw new HttpError(404, 'key_not_found', `key ${JSON.stringify(key)} does not exist`);
    return reply.send(found);
  });

  app.get('/status', async (_request, reply) => reply.send(service.status()));
  const metrics = options.metrics;
  if (metrics !== undefined) {
    app.get('/metrics', async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.text()),
    );
  }

  // Leadership transfer (thesis §3.10): answers once the target leads.
  app.post('/cluster/leader', async (request, reply) => {
    const to = objectBody(request.body)['to'];
    if (typeof to !== 'string' || service.webAddressOf(to) === undefined) {
      throw new HttpError(400, 'invalid_target', '"to" must name a member of the cluster');
    }
    const outcome = await onLeader(request, reply, () => service.transferLeadership(to));
    if ('local' in outcome) return reply.send(outcome.local);
    return reply;
  });

  // Membership (thesis chapter 4). Every node answers GET with its own view; changes run on the leader.
  app.get('/cluster/members', async (_request, reply) => reply.send(service.members()));

  app.post('/cluster/members', async (request, reply) => {
    const { id, address, role } = newMemberOf(objectBody(request.body));
    const outcome = await onLeader(request, reply, () => service.addMember(id, address, role));
    if ('local' in outcome) return reply.code(201).send(outcome.local);
    return reply;
  });

  app.post('/cluster/members/:id/promote', async (request, reply) => {
    const id = memberIdOf((request.params as { id: string }).id);
    const outcome = await onLeader(request, reply, () => service.promoteMember(id));
    if ('local' in outcome) return reply.send(outcome.local);
    return reply;
  });

  app.delete('/cluster/members/:id', async (request, reply) => {
    const id = memberIdOf((request.params as { id: string }).id);
    const outcome = await onLeader(request, reply, () => service.removeMember(id));
    if ('local' in outcome) return reply.send(outcome.local);
    return reply;
  });

  // Cluster-internal: a follower asks the leader for a confirmed read index (thesis §6.4); `?for=<its id>` makes
  // the leader tell it of the commit index at once (it waits to apply up to the index before it answers).
  app.post('/internal/read-index', async (request, reply) => {
    const forPeer = (request.query as Record<string, unknown>)['for'];
    const index = await service.readIndex(forPeer === undefined ? undefined : memberIdOf(forPeer));
    return reply.send({ index });
  });

  return app;
}

const memberKeys = ['id', 'grpcAddress', 'webAddress', 'role'];

/** The body of POST /cluster/members: {"id","grpcAddress","webAddress","role"?: "learner" | "voter"}. */
function newMemberOf(body: Record<string, unknown>): {
  id: string;
  address: { grpcAddress: string; webAddress: string };
  role: MemberRole;
} {
  const unknown = Object.keys(body).find((key) => !memberKeys.includes(key));
  if (unknown !== undefined) {
    throw new HttpError(
      400,
      'invalid_member',
      `unknown field ${JSON.stringify(unknown)}; a member has ${memberKeys.join(', ')}`,
    );
  }
  const id = memberIdOf(body['id']);
  const address = (field: 'grpcAddress' | 'webAddress'): string => {
    const value = body[field];
    if (typeof value !== 'string' || !addressPattern.test(value)) {
      throw new HttpError(
        400,
        'invalid_member',
        `"${field}" must be "host:port", got ${JSON.stringify(value ?? null)}`,
      );
    }
    return value;
  };
  const role = body['role'] ?? 'learner';
  if (role !== 'learner' && role !== 'voter') {
    throw new HttpError(
      400,
      'invalid_member',
      `"role" must be "learner" or "voter", got ${JSON.stringify(role)}`,
    );
  }
  return { id, address: { grpcAddress: address('grpcAddress'), webAddress: address('webAddress') }, role };
}

function memberIdOf(value: unknown): string {
  if (typeof value !== 'string' || !idPattern.test(value)) {
    throw new HttpError(
      400,
      'invalid_member',
      `a member id is ${idRule}; got ${JSON.stringify(value ?? null)}`,
    );
  }
  return value;
}

function wantsRedirect(request: FastifyRequest): boolean {
  const value = (request.query as Record<string, unknown> | undefined)?.['redirect'];
  return value === 'true' || value === '1' || value === '';
}

function checkKey(key: string, maxKeyBytes: number): void {
  if (key.length === 0) throw new HttpError(400, 'invalid_key', 'the key must not be empty');
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > maxKeyBytes) {
    throw new HttpError(413, 'key_too_large', `the key is ${bytes} bytes; the limit is ${maxKeyBytes}`);
  }
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'invalid_body', 'the body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function valueOf(body: Record<string, unknown>, maxValueBytes: number): string {
  const value = body['value'];
  if (typeof value !== 'string') throw new HttpError(400, 'invalid_value', '"value" must be a string');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxValueBytes) {
    throw new HttpError(413, 'value_too_large', `the value is ${bytes} bytes; the limit is ${maxValueBytes}`);
  }
  return value;
}

/** `prevValue` / `prevIndex` from a body (or query), at most one of them. */
function conditionOf(source: Record<string, unknown>): { condition?: Condition } {
  const { prevValue, prevIndex } = source;
  if (prevValue !== undefined && prevIndex !== undefined) {
    throw new HttpError(400, 'invalid_condition', 'give "prevValue" or "prevIndex", not both');
  }
  if (prevValue !== undefined) {
    if (typeof prevValue !== 'string')
      throw new HttpError(400, 'invalid_condition', '"prevValue" must be a string');
    return { condition: { prevValue } };
  }
  if (prevIndex !== undefined) {
    if (typeof prevIndex !== 'number' || !Number.isSafeInteger(prevIndex) || prevIndex < 0) {
      throw new HttpError(
        400,
        'invalid_condition',
        '"prevIndex" must be a whole number >= 0 (0: must not exist)',
      );
    }
    return { condition: { prevIndex } };
  }
  return {};
}

/** DELETE takes its conditions as query parameters too: `?prevIndex=12` or `?prevValue=x`. */
function queryConditions(query: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof query['prevValue'] === 'string') out['prevValue'] = query['prevValue'];
  const index = query['prevIndex'];
  if (typeof index === 'string') out['prevIndex'] = /^\d+$/.test(index) ? Number(index) : index;
  return out;
}

function idempotencyOf(request: FastifyRequest): Pick<WriteOptions, 'idempotencyKey'> {
  const key = request.headers[idempotencyHeader];
  if (key === undefined) return {};
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > maxIdempotencyKeyBytes) {
    throw new HttpError(
      400,
      'invalid_idempotency_key',
      `Idempotency-Key must be 1 to ${maxIdempotencyKeyBytes} bytes`,
    );
  }
  return { idempotencyKey: key };
}

function consistencyOf(query: unknown): Consistency {
  const value = (query as Record<string, unknown> | undefined)?.['consistency'] ?? 'linearizable';
  if (value === 'linearizable' || value === 'lease' || value === 'stale') return value;
  throw new HttpError(
    400,
    'invalid_consistency',
    `consistency must be "linearizable", "lease" or "stale", got ${JSON.stringify(value)}`,
  );
}
