import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ConsoleConfig, ConsoleRole } from './config.ts';
import { sameSecret, verifyPassword } from './passwords.ts';

export const SESSION_COOKIE = 'rsb_console';

/** Who is signed in; carried in a signed, HttpOnly, SameSite=Strict cookie (nothing kept on the server). */
export interface ConsoleSession {
  user: string;
  role: ConsoleRole;
  /** Epoch ms. */
  expiresAt: number;
}

interface SessionPayload {
  u: string;
  r: ConsoleRole;
  e: number;
}

export interface CookiePolicy {
  prefix: string;
  secure: 'auto' | 'always';
}

export function cookieOptions(
  policy: CookiePolicy,
  request: FastifyRequest,
): { path: string; httpOnly: true; sameSite: 'strict'; secure: boolean; signed: true } {
  return {
    path: policy.prefix,
    httpOnly: true,
    sameSite: 'strict',
    secure: policy.secure === 'always' || request.protocol === 'https',
    signed: true,
  };
}

export function startSession(
  reply: FastifyReply,
  request: FastifyRequest,
  policy: CookiePolicy,
  session: ConsoleSession,
): void {
  const payload: SessionPayload = { u: session.user, r: session.role, e: session.expiresAt };
  reply.setCookie(SESSION_COOKIE, Buffer.from(JSON.stringify(payload)).toString('base64url'), {
    ...cookieOptions(policy, request),
    expires: new Date(session.expiresAt),
  });
}

export function endSession(reply: FastifyReply, request: FastifyRequest, policy: CookiePolicy): void {
  reply.clearCookie(SESSION_COOKIE, cookieOptions(policy, request));
}

/** The signed cookie's session, unless it is missing, tampered with or expired. */
export function sessionOf(request: FastifyRequest, now: number): ConsoleSession | null {
  const raw = request.cookies[SESSION_COOKIE];
  if (!raw) return null;
  const unsigned = request.unsignCookie(raw);
  if (!unsigned.valid || unsigned.value === null) return null;
  try {
    const payload = JSON.parse(Buffer.from(unsigned.value, 'base64url').toString('utf8')) as Partial<SessionPayload>;
    if (
      typeof payload.u !== 'string' ||
      (payload.r !== 'viewer' && payload.r !== 'operator') ||
      typeof payload.e !== 'number'
    )
      return null;
    if (payload.e <= now) return null;
    return { user: payload.u, role: payload.r, expiresAt: payload.e };
  } catch {
    return null;
  }
}

/**
 * Name and password against the configured users, or (empty name) the access token from the
 * environment. Every failure looks the same to the caller.
 */
export async function authenticate(
  config: Pick<ConsoleConfig, 'users' | 'tokenEnv' | 'tokenRole'>,
  env: Record<string, string | undefined>,
  name: string,
  password: string,
): Promise<{ user: string; role: ConsoleRole } | null> {
  if (password.length === 0 || password.length > 1024) return null;
  if (name === '') {
    const token = config.tokenEnv ? env[config.tokenEnv] : undefined;
    if (!token || token.length < 32) return null;
    return sameSecret(password, token) ? { user: '(access token)', role: config.tokenRole } : null;
  }
  const user = config.users.find((candidate) => candidate.name === name);
  // Unknown names cost a hash too, so timing does not tell which names exist.
  const matches = await verifyPassword(password, user?.passwordHash ?? UNKNOWN_USER_HASH);
  return user && matches ? { user: user.name, role: user.role } : null;
}

/** A valid hash of a random password nobody knows. */
const UNKNOWN_USER_HASH = 'scrypt$131072$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
