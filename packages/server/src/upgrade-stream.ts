import type { Duplex } from 'node:stream';
import {
  BodyWriter,
  DataSink,
  FLAG_UPGRADE,
  FrameType,
  ResponseHead,
  SendCredit,
  TunnelError,
  bridgeSocket,
  encodeJsonPayload,
  type ErrorCode,
  type Frame,
  type InboundState,
  type RequestHead,
} from '@tunnel/protocol';
import { dispatchAgentFrame, type AgentFrameHandlers } from './agent-frames.js';
import type { Logger } from './logger.js';
import { rawResponseHead, writeRawError } from './raw-http.js';
import { INTERIM_BACKLOG_BYTES, MAX_INTERIM_PER_STREAM, type StreamHost } from './relay-stream.js';

/**
 * A public request asking to switch protocols (WebSocket, a dev server's hot reload). Until the
 * agent answers, the public socket is paused. A 101 is written out by hand and then the socket
 * and the stream carry raw bytes both ways, still framed and flow-controlled. Any other answer
 * is passed on as an ordinary response, delimited by closing the socket.
 */
export class UpgradeStream {
  readonly id: number;
  readonly #socket: Duplex;
  #interimCount = 0;
  readonly #upgrade: string;
  readonly #host: StreamHost;
  readonly #log: Logger;
  readonly #credit = new SendCredit();
  readonly #sink: DataSink;
  readonly #inbound: InboundState = { headReceived: false, remoteEnded: false };
  #headWritten = false;
  #released = false;

  constructor(id: number, socket: Duplex, early: Buffer, upgrade: string, host: StreamHost, log: Logger) {
    this.id = id;
    this.#socket = socket;
    this.#upgrade = upgrade;
    this.#host = host;
    this.#log = log;
    this.#sink = new DataSink(id, host.frames);
    socket.pause();
    // Bytes the client sent after its request head belong to the new protocol: keep them for it.
    if (early.length > 0) socket.unshift(early);
    socket.once('close', () => this.#onPublicClose());
    socket.on('error', (error: Error) => this.#log.debug({ streamId: id, err: error }, 'public upgrade socket error'));
  }

  /** Sends OPEN with the upgrade flag. */
  start(head: RequestHead): void {
    this.#host.frames.write(FrameType.OPEN, this.id, encodeJsonPayload(head), FLAG_UPGRADE);
  }

  /** Handles one frame from the agent for this stream; throws TunnelError on a protocol violation. */
  onFrame(frame: Frame): void {
    if (this.#released) return;
    dispatchAgentFrame(frame, this.#inbound, this.id, this.#on);
  }

  readonly #on: AgentFrameHandlers = {
    informational: (head) => this.#onInformational(head),
    head: (head) => this.#onHead(head),
    data: (payload) => this.#sink.write(payload),
    // Half-close: the agent's side is done; the public client may still send.
    end: () => this.#socket.end(),
    reset: (reason) => this.fail(reason.code),
    window: (bytes) => this.#credit.grant(bytes),
  };

  /** Ends the stream: an error answer if nothing was written yet, else the socket is cut. */
  fail(code: ErrorCode, detail?: string): void {
    if (this.#released) return;
    if (this.#headWritten) this.#socket.destroy();
    else writeRawError(this.#socket, code, detail);
    this.#release();
  }

  /** Interim answers (103 before a 101) go out as they came, within the same bounds as RelayStream. */
  #onInformational(head: ResponseHead): void {
    this.#interimCount += 1;
    if (this.#interimCount > MAX_INTERIM_PER_STREAM || this.#socket.writableLength > INTERIM_BACKLOG_BYTES) return;
    this.#socket.write(rawResponseHead(head.status, head.statusMessage, head.headers));
  }

  #onHead(head: ResponseHead): void {
    this.#headWritten = true;
    if (head.status === 101) {
      const headers: Array<[string, string]> = [['Connection', 'Upgrade'], ['Upgrade', this.#upgrade], ...head.headers];
      this.#socket.write(rawResponseHead(101, head.statusMessage, headers));
      const outgoing = new BodyWriter(this.id, this.#credit, this.#host.frames);
      bridgeSocket(this.#socket, outgoing, this.#sink, () => this.#release());
      return;
    }
    // Not switching: an ordinary response, whose end is marked by closing the connection.
    this.#socket.write(rawResponseHead(head.status, head.statusMessage, [...head.headers, ['Connection', 'close']]));
    this.#sink.attach(this.#socket);
  }

  #onPublicClose(): void {
    if (this.#released) return;
    this.#host.frames.write(FrameType.RESET, this.id, encodeJsonPayload({ code: 'STREAM_CANCELLED' }));
    this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#credit.close(new TunnelError('STREAM_CANCELLED', 'The upgraded stream is over.'));
    this.#sink.close();
    if (!this.#socket.destroyed) this.#socket.destroy();
    this.#host.release(this.id);
  }
}
