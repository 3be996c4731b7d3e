import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * OpenSSH `SHA256:` fingerprint (what `ssh-keygen -l` prints) of a public key: the raw key blob,
 * an `ssh-ed25519 AAAA... comment` line, or the base64 blob alone.
 * ssh2's `hostHash` gives hex digests instead, which operators cannot compare with anything.
 */
export function fingerprintOfKey(key: Buffer | string): string {
  const blob = typeof key === 'string' ? blobFromText(key) : key;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function blobFromText(text: string): Buffer {
  const parts = text.trim().split(/\s+/);
  const base64 = parts.length >= 2 && /^(ssh|ecdsa|sk-)/.test(parts[0] ?? '') ? parts[1] : parts[0];
  return Buffer.from(base64 ?? '', 'base64');
}

/** Key type inside an SSH public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  if (length > 64 || blob.length < 4 + length) return 'unknown';
  return blob.subarray(4, 4 + length).toString('latin1');
}

export interface KnownHostEntry {
  /** `@revoked` or `@cert-authority` when present. */
  marker: 'revoked' | 'cert-authority' | undefined;
  /** Raw host field: comma-separated patterns or one hashed `|1|salt|hash` entry. */
  hosts: string;
  keyType: string;
  key: Buffer;
  /** 1-based line number, for messages. */
  line: number;
}

/** Parses known_hosts text; comments, blank and malformed lines are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const name = fields.shift();
      if (name === '@revoked') marker = 'revoked';
      else if (name === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    const [hosts, keyType, base64] = fields;
    if (!hosts || !keyType || !base64) return;
    const key = Buffer.from(base64, 'base64');
    if (key.length === 0 || keyTypeOf(key) !== keyType) return;
    entries.push({ marker, hosts, keyType, key, line: index + 1 });
  });
  return entries;
}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** True when a known_hosts host field (patterns, negations, or a hashed entry) covers host:port. */
export function hostFieldMatches(hosts: string, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  if (hosts.startsWith('|1|')) {
    const [, , salt, hash] = hosts.split('|');
    if (!salt || !hash) return false;
    const expected = Buffer.from(hash, 'base64');
    const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
  let matched = false;
  for (const pattern of hosts.split(',')) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (wildcardMatch(body.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function wildcardMatch(pattern: string, value: string): boolean {
  const regex = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return regex.test(value);
}

export interface HostKeyPolicy {
  /** Pinned fingerprints; any one matching is accepted. */
  fingerprints?: string[];
  /** Parsed known_hosts entries and where they came from. */
  knownHosts?: { entries: KnownHostEntry[]; source: string };
  insecureAcceptAny?: boolean;
}

export type HostKeyVerdict =
  | { ok: true; presented: string }
  | { ok: false; reason: 'mismatch' | 'unknown' | 'revoked'; presented: string; keyType: string; expected: string[] };

/** Decides whether the key a server presented is the one we expect. */
export function verifyHostKey(policy: HostKeyPolicy, host: string, port: number, key: Buffer): HostKeyVerdict {
  const presented = fingerprintOfKey(key);
  const keyType = keyTypeOf(key);
  if (policy.insecureAcceptAny) return { ok: true, presented };
  const expected: string[] = [];
  if (policy.knownHosts) {
    const forHost = policy.knownHosts.entries.filter(
      (entry) => entry.marker !== 'cert-authority' && hostFieldMatches(entry.hosts, host, port),
    );
    if (forHost.some((entry) => entry.marker === 'revoked' && entry.key.equals(key))) {
      return { ok: false, reason: 'revoked', presented, keyType, expected: [] };
    }
    for (const entry of forHost) {
      if (entry.marker === 'revoked') continue;
      if (entry.key.equals(key)) return { ok: true, presented };
      expected.push(fingerprintOfKey(entry.key));
    }
  }
  for (const pinned of policy.fingerprints ?? []) {
    if (sameFingerprint(pinned, presented)) return { ok: true, presented };
    expected.push(pinned);
  }
  return { ok: false, reason: expected.length === 0 ? 'unknown' : 'mismatch', presented, keyType, expected };
}

function sameFingerprint(a: string, b: string): boolean {
  return a.replace(/=+$/, '') === b.replace(/=+$/, '');
}

/** Key types listed for host:port, so the client can ask for the type it can actually verify. */
export function knownKeyTypes(policy: HostKeyPolicy, host: string, port: number): string[] {
  const types = new Set<string>();
  for (const entry of policy.knownHosts?.entries ?? []) {
    if (entry.marker === undefined && hostFieldMatches(entry.hosts, host, port)) types.add(entry.keyType);
  }
  return [...types];
}
