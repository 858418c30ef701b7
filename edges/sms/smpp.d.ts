// Types for the parts of the `smpp` package (0.5, untyped) the SMS edge and its tests use.
declare module 'smpp' {
  import type { EventEmitter } from 'node:events';
  import type { Server as NetServer, Socket } from 'node:net';

  namespace smpp {
    /** A decoded short_message / message_payload: the text and the UDH information elements. */
    interface DecodedMessage {
      message: string | Uint8Array;
      udh?: Uint8Array[];
    }
    interface PDU {
      command: string;
      command_id: number;
      command_status: number;
      sequence_number: number;
      isResponse(): boolean;
      response(options?: Record<string, unknown>): PDU;
      [field: string]: unknown;
    }
    interface Session extends EventEmitter {
      socket: Socket;
      /** false when the socket is not writable; sendCallback runs once the bytes are flushed. */
      send(pdu: PDU, responseCallback?: (resp: PDU) => void, sendCallback?: (pdu: PDU) => void): boolean;
      close(callback?: () => void): void;
      destroy(callback?: () => void): void;
      on(event: 'connect' | 'close', listener: () => void): this;
      on(event: 'error', listener: (e: Error) => void): this;
      on(event: string, listener: (pdu: PDU) => void): this;
    }
    interface Server extends NetServer {
      sessions: Session[];
    }
  }

  interface Smpp {
    connect(options: { host: string; port: number }, listener?: () => void): smpp.Session;
    createServer(options: Record<string, unknown>, listener: (session: smpp.Session) => void): smpp.Server;
    PDU: new (command: string, options?: Record<string, unknown>) => smpp.PDU;
    errors: Record<string, number>;
  }

  const smpp: Smpp;
  export default smpp;
}
