// One error type for HTTP, mapped in one place (STYLE.md 10). Every error body is
// {"error":{"code":"...","message":"..."}}.

import {
  InvalidRequestError,
  MembershipError,
  NotLeaderError,
  ProposalDroppedError,
  RaftingError,
  TimeoutError,
  UnavailableError,
} from '../node/errors.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    /** Fields added to the error body beside `error` (409 carries the current value). */
    readonly extra: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Fastify's own error codes that are the client's fault, with the code we report. */
const fastifyClientErrors: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
};

/**
 * Maps any error to an HttpError. `redirect` builds the 307 for a known leader; `retryAfterSeconds` is what a
 * client should wait for a leader to appear (about one election timeout).
 */
export function toHttpError(
  error: unknown,
  redirect: (leader: string) => string | undefined,
  retryAfterSeconds: number,
): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof NotLeaderError) {
    const location = error.leader === null ? undefined : redirect(error.leader);
    if (location !== undefined) {
      return new HttpError(307, 'not_leader', `this node is not the leader; ${error.leader} is`, {
        Location: location,
      });
    }
    return new HttpError(503, 'no_leader', 'no leader is known at the moment; retry shortly', {
      'Retry-After': String(retryAfterSeconds),
    });
  }
  if (error instanceof TimeoutError) return new HttpError(504, error.code, error.message);
  if (error instanceof ProposalDroppedError || error instanceof UnavailableError) {
    return new HttpError(503, error.code, error.message, { 'Retry-After': String(retryAfterSeconds) });
  }
  if (error instanceof InvalidRequestError) return new HttpError(409, error.code, error.message);
  if (error instanceof MembershipError) {
    return new HttpError(error.code === 'member_not_found' ? 404 : 409, error.code, error.message);
  }
  if (error instanceof RaftingError) return new HttpError(500, error.code, error.message);
  const fastifyCode = (error as { code?: unknown }).code;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  if (
    typeof fastifyCode === 'string' &&
    typeof statusCode === 'number' &&
    statusCode >= 400 &&
    statusCode < 500
  ) {
    const message = error instanceof Error ? error.message : 'bad request';
    return new HttpError(statusCode, fastifyClientErrors[fastifyCode] ?? 'bad_request', message);
  }
  return new HttpError(500, 'internal', 'internal error');
}
