export { startSshd, freePort, type StartSshdOptions, type SshdInstance } from './sshd.ts';
