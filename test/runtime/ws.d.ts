/**
 * The few parts of the `ws` package the inspection tests use. `ws` comes with @statelyai/inspect
 * and ships no types of its own (there is no @types/ws here).
 */
declare module "ws" {
  import { EventEmitter } from "node:events";
  import type { AddressInfo } from "node:net";

  export class WebSocket extends EventEmitter {
    close(): void;
    on(event: "message", listener: (data: { toString(): string }) => void): this;
    on(event: "close", listener: () => void): this;
  }

  export class WebSocketServer extends EventEmitter {
    constructor(options: { readonly host?: string; readonly port?: number });
    readonly clients: Set<WebSocket>;
    address(): AddressInfo | string | null;
    close(callback?: (error?: Error) => void): void;
    on(event: "connection", listener: (socket: WebSocket) => void): this;
    on(event: "listening", listener: () => void): this;
    on(event: "error", listener: (error: Error) => void): this;
  }
}
