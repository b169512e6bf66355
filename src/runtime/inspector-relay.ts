/**
 * `esper inspect`: a relay between inspected processes (ESPER_INSPECT=ws://...) and Stately's
 * inspector in a browser. It works as Stately's own relay (`@statelyai/inspect/server`) does: one
 * WebSocket server that passes every message to every other connection, and an HTTP page that
 * embeds the inspector UI and feeds it what arrives. It differs in what a late connection is told:
 * Stately's relay replays the last 200 messages, so a browser opened after a system of 4 x 64
 * seeds started hears of a fraction of its actors. This one replays every actor's registration
 * with its latest snapshot, then the recent events, so a late browser sees every actor as it is.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { ActorRegistry, type InspectionLike } from "./actor-registry.ts";

export interface InspectorRelayOptions {
  /** Port of the WebSocket relay and the HTTP page. Default 8080 (Stately's); 0 picks a free one. */
  readonly port?: number;
  /** Interface to listen on. Default 127.0.0.1: inspection data stays on this machine. */
  readonly host?: string;
  /** The inspector UI the page embeds. Default Stately's, https://stately.ai/inspect. */
  readonly inspectorUrl?: string;
  /** Events other than registrations replayed to a new connection. Default 1,000. */
  readonly recent?: number;
  /** Actor registrations kept for replay. Default 100,000. */
  readonly maxActors?: number;
}

export const INSPECTOR_RELAY_DEFAULTS = { port: 8080, host: "127.0.0.1", inspectorUrl: "https://stately.ai/inspect", recent: 1_000, maxActors: 100_000 } as const;

export interface InspectorRelay {
  /** Where inspected processes send: the value for ESPER_INSPECT. */
  readonly wsUrl: string;
  /** The page to open in a browser. */
  readonly pageUrl: string;
  readonly stats: () => { readonly actors: number; readonly connections: number; readonly relayed: number };
  readonly stop: () => Promise<void>;
}

/** The bridge page: Stately's inspector in a frame, fed every relayed event once it says it is ready. */
const page = (wsUrl: string, inspectorUrl: string): string => `<!DOCTYPE html>
<html>
<head><title>esper: Stately inspector</title><style>*{margin:0;padding:0}html,body{height:100%}iframe{width:100%;height:100%;border:none}</style></head>
<body>
<iframe id="inspector" src="${inspectorUrl}"></iframe>
<script>
  const frame = document.getElementById("inspector");
  const waiting = [];
  let ready = false;
  window.addEventListener("message", (e) => {
    if (e.data && e.data.type === "@statelyai.connected") {
      ready = true;
      for (const event of waiting.splice(0)) frame.contentWindow.postMessage(event, "*");
    }
  });
  const socket = new WebSocket(${JSON.stringify(wsUrl)});
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (ready) frame.contentWindow.postMessage(event, "*");
    else waiting.push(event);
  };
</script>
</body>
</html>`;

const parse = (text: string): InspectionLike | null => {
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === "object" && typeof (value as InspectionLike).type === "string" ? (value as InspectionLike) : null;
  } catch {
    return null;
  }
};

/** Starts the relay; resolves once it listens (rejects when the port is taken). */
export const startInspectorRelay = (options: InspectorRelayOptions = {}): Promise<InspectorRelay> => {
  const o = { ...INSPECTOR_RELAY_DEFAULTS, ...options };
  const actors = new ActorRegistry<InspectionLike>(o.maxActors);
  const recent: string[] = [];
  let relayed = 0;
  let wsUrl = "";
  const http: Server = createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page(wsUrl, o.inspectorUrl));
  });
  const wss = new WebSocketServer({ server: http });
  wss.on("connection", (socket) => {
    // What it missed: every actor as it is now, then the recent events.
    for (const registration of actors.registrations()) socket.send(JSON.stringify(registration));
    for (const text of recent) socket.send(text);
    socket.on("message", (data) => {
      const text = data.toString();
      const event = parse(text);
      if (event === null) return; // not an inspection event: nothing a browser could show
      relayed++;
      // Snapshots are folded into the registrations; the rest is kept, bounded, for late connections.
      if (!actors.note(event) && event.type !== "@xstate.snapshot") {
        recent.push(text);
        if (recent.length > o.recent) recent.shift();
      }
      for (const client of wss.clients) if (client !== socket && client.readyState === WebSocket.OPEN) client.send(text);
    });
  });
  return new Promise((resolve, reject) => {
    // The WebSocket server re-emits its HTTP server's errors: a taken port rejects here, once, instead of crashing.
    wss.on("error", () => {});
    http.once("error", reject);
    http.listen(o.port, o.host, () => {
      http.off("error", reject);
      const { port } = http.address() as AddressInfo;
      const host = o.host.includes(":") ? `[${o.host}]` : o.host;
      wsUrl = `ws://${host}:${port}`;
      resolve({
        wsUrl,
        pageUrl: `http://${host}:${port}`,
        stats: () => ({ actors: actors.size, connections: wss.clients.size, relayed }),
        stop: () =>
          new Promise<void>((done) => {
            for (const client of wss.clients) client.terminate();
            wss.close();
            http.close(() => done());
          }),
      });
    });
  });
};
