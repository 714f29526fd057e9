import type { Duplex } from 'node:stream';
import type { BodyWriter } from './body-writer.js';
import type { DataSink } from './data-sink.js';

/**
 * Joins a raw socket to a stream after a 101: bytes read from the socket leave as DATA (the
 * body writer sends END when the socket ends), and DATA arriving from the peer is written to
 * the socket through the sink, with credit granted as the socket drains. Half-closes pass
 * through: the peer's END becomes `socket.end()`. `onClosed` runs once, when the socket closes.
 */
export function bridgeSocket(socket: Duplex, outgoing: BodyWriter, incoming: DataSink, onClosed: () => void): void {
  incoming.attach(socket);
  outgoing.on('error', () => socket.destroy());
  socket.pipe(outgoing);
  socket.once('close', onClosed);
  socket.resume();
}
