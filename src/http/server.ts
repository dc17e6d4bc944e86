// The REST API every node serves on its web_address. The routes, statuses and bodies are listed in the README.

import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Consistency, KvService } from '../node/api.js';
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
}

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
      .send(errorBody(httpError.code, httpError.message));
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

  const write = async (key: string, body: unknown, reply: FastifyReply) => {
    const value = valueOf(body, maxValueBytes);
    return reply.send(await service.put(key, value));
  };

  app.put('/kv/*', async (request, reply) => write(keyOf(request), request.body, reply));

  // The seed project's call, kept so its README examples work.
  app.post('/command', async (request, reply) => {
    const body = objectBody(request.body);
    const key = body['key'];
    if (typeof key !== 'string') throw new HttpError(400, 'invalid_key', '"key" must be a string');
    checkKey(key, maxKeyBytes);
    return write(key, body, reply);
  });

  app.get('/kv/*', async (request, reply) => {
    const key = keyOf(request);
    const consistency = consistencyOf(request.query);
    const found = await service.get(key, consistency);
    if (found === null)
      throw new HttpError(404, 'key_not_found', `key ${JSON.stringify(key)} does not exist`);
    return reply.send(found);
  });

  app.delete('/kv/*', async (request, reply) => reply.send(await service.delete(keyOf(request))));

  app.get('/status', async (_request, reply) => reply.send(service.status()));

  return app;
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

function valueOf(body: unknown, maxValueBytes: number): string {
  const value = objectBody(body)['value'];
  if (typeof value !== 'string') throw new HttpError(400, 'invalid_value', '"value" must be a string');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxValueBytes) {
    throw new HttpError(413, 'value_too_large', `the value is ${bytes} bytes; the limit is ${maxValueBytes}`);
  }
  return value;
}

function consistencyOf(query: unknown): Consistency {
  const value = (query as Record<string, unknown> | undefined)?.['consistency'] ?? 'linearizable';
  if (value === 'linearizable' || value === 'stale') return value;
  throw new HttpError(
    400,
    'invalid_consistency',
    `consistency must be "linearizable" or "stale", got ${JSON.stringify(value)}`,
  );
}
