import type { Client as SshClient, SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';

/*
 * The only places that reach into private fields of ssh2 and ssh2-sftp-client. Their typings expose
 * neither the ssh2 Client under an SftpClient, nor the socket, nor the server's SFTP extensions, and
 * each use below has a safe fallback when a library update moves the field.
 */

/** ssh2-sftp-client keeps its ssh2 Client in `.client`; the typings do not say so. */
export function rawClient(client: SftpClient): SshClient {
  return (client as unknown as { client: SshClient }).client;
}

/**
 * Drops a connection whose state is unknown (a timed-out operation) with a TCP RST. A plain destroy
 * closes gracefully: the kernel still delivers what the socket had queued, and on a link that stalled,
 * an OPEN queued there can create a temp file on the server after the next attempt cleaned up. A reset
 * discards the queue, so nothing of the abandoned attempt reaches the server later.
 */
export function abandonConnection(client: SftpClient): void {
  const ssh = rawClient(client);
  const socket = (ssh as unknown as { _sock?: { resetAndDestroy?: () => void; destroyed?: boolean } })._sock;
  if (typeof socket?.resetAndDestroy === 'function' && socket.destroyed === false) socket.resetAndDestroy();
  ssh.destroy();
}

/**
 * ssh2 writes every SFTP packet to its socket at once, one syscall (and one wake-up of the server)
 * each. Corking the socket around requests sent together makes them one write; ssh2 keeps the
 * socket on a private field, so without it the requests simply go out one by one.
 */
export function socketBatcher(ssh: SshClient): (send: () => void) => void {
  const socket = (ssh as unknown as { _sock?: { cork?: () => void; uncork?: () => void } })._sock;
  if (typeof socket?.cork !== 'function' || typeof socket.uncork !== 'function') return (send) => send();
  const { cork, uncork } = { cork: socket.cork.bind(socket), uncork: socket.uncork.bind(socket) };
  return (send) => {
    cork();
    try {
      send();
    } finally {
      uncork();
    }
  };
}

/** ssh2 records the server's SFTP extensions on a private field; absent means "do not rely on it". */
export function offersExtension(sftp: SFTPWrapper, name: string): boolean {
  const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return extensions !== undefined && Object.hasOwn(extensions, name);
}

/** ssh2 records whether the server's version string says OpenSSH; absent means "assume not". */
export function isOpenSshServer(sftp: SFTPWrapper): boolean {
  return (sftp as unknown as { _isOpenSSH?: boolean })._isOpenSSH === true;
}
