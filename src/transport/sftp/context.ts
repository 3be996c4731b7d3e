import type PQueue from 'p-queue';
import type { SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import type { Logger } from '../../observability/index.ts';
import type { TargetConfig } from '../config.ts';
import type { PoolStats } from '../contract.ts';
import type { HostKeyPolicy } from '../hostkey.ts';
import { joinRemote } from '../paths.ts';
import type { TransportHooks } from '../types.ts';

/** Pool statistics plus counters that prove reuse (and feed metrics). */
export interface SftpPoolStats extends PoolStats {
  /** Configured maximum connections per credential set. */
  maxSize: number;
  /** Credential sets with a pool (1 unless `credentials: hookSecrets`). */
  pools: number;
  connectsTotal: number;
  connectFailuresTotal: number;
  handshakesInFlight: number;
}

export interface Credentials {
  username: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

export interface Connection {
  readonly id: number;
  readonly client: SftpClient;
  readonly sftp: SFTPWrapper;
  alive: boolean;
  lastUsedAt: number;
  readonly posixRename: boolean;
  /** Write requests of one file kept outstanding (`upload.writesInFlight`, resolved for this server). */
  readonly writesInFlight: number;
  /** Holds back the socket writes of requests sent back to back, so they leave in one segment. */
  readonly batch: (send: () => void) => void;
}

/** What every part of one SFTP target shares: where it points, its settings, counters and callbacks. */
export interface TargetContext {
  readonly name: string;
  readonly description: string;
  readonly hostLabel: string;
  readonly host: string;
  readonly port: number;
  /** The target folder on the server (`.` for the login folder). */
  readonly base: string;
  readonly config: TargetConfig;
  readonly policy: HostKeyPolicy;
  readonly handshakes: PQueue;
  readonly logger: Logger;
  readonly counters: { connects: number; connectFailures: number; handshakesInFlight: number; nextId: number };
  readonly hooks: TransportHooks;
  changed(): void;
}

/** The server path of a path relative to the target folder. */
export function remotePath(context: TargetContext, relative: string): string {
  return joinRemote(context.base, relative);
}
