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
