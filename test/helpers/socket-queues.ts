import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The kernel's largest send buffer for one TCP socket: the third field of tcp_wmem (Linux). */
export function tcpWmemMaxBytes(): number {
  const fields = readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().split(/\s+/);
  return Number(fields[2]);
}

/**
 * Bytes the kernel holds for the established TCP connection that uses `port` on either end:
 * Recv-Q (received, not yet read) plus Send-Q (written, not yet acknowledged) of both of its
 * sockets, read with `ss` from iproute2.
 */
export function kernelQueuedBytes(port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8' });
  let total = 0;
  for (const line of out.split('\n')) {
    // With a state filter ss prints no State column: Recv-Q, Send-Q, local, peer.
    const [recvQ, sendQ] = line.trim().split(/\s+/);
    if (recvQ && sendQ && /^\d+$/.test(recvQ) && /^\d+$/.test(sendQ)) total += Number(recvQ) + Number(sendQ);
  }
  return total;
}
