import * as tf from "@tensorflow/tfjs-core";
// tfjs-layers' bundle registers tfjs-core's gradients; without it no backend can train.
import "@tensorflow/tfjs-layers";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { BackendError } from "./errors.ts";

/**
 * Which TensorFlow.js backend runs the data plane: `ESPER_BACKEND=wasm|cpu|tensorflow`.
 * - wasm (default): ships in its npm package, runs everywhere, XNNPACK kernels.
 * - cpu: plain JavaScript, the fallback when wasm cannot start.
 * - tensorflow: libtensorflow through `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node`,
 *   which esper does not depend on (their install downloads native binaries): loaded by dynamic
 *   import only when asked for, and only if the user installed one, at the version of
 *   @tensorflow/tfjs-core esper uses (4.22), so that it registers with the same tfjs.
 */
export const BACKENDS = ["wasm", "cpu", "tensorflow"] as const;
/** A backend `initBackend` can start: "wasm" (the default), "cpu" or "tensorflow" (see BACKENDS). */
export type BackendName = (typeof BACKENDS)[number];

/** What `initBackend` started: the backend asked for, the one running, and why they differ when they do. */
export interface BackendInfo {
  /** The backend asked for (the argument, else ESPER_BACKEND, else "wasm"). */
  readonly requested: BackendName;
  /** What tfjs runs on now (`tf.getBackend()`). */
  readonly active: string;
  /** Set when the requested backend could not start and another runs instead: why. */
  readonly fallbackReason?: string;
  /** The package that provided a `tensorflow` backend. */
  readonly packageName?: string;
}

/** Options of `initBackend`, for tests and embedders: how modules are loaded and where a fallback warning goes. */
export interface BackendOptions {
  /** How to load a module by name; tests substitute it. Default: dynamic `import()`. */
  readonly importModule?: (specifier: string) => Promise<unknown>;
  /** Where a fallback warning goes. Default: console.warn. */
  readonly warn?: (message: string) => void;
}

export const TENSORFLOW_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;

export const parseBackendName = (value: string | undefined): BackendName => {
  const name = (value ?? "").trim().toLowerCase() || "wasm";
  if ((BACKENDS as readonly string[]).includes(name)) return name as BackendName;
  throw new BackendError({ reason: "unknown_backend", message: `ESPER_BACKEND="${value}" is not a backend; use one of ${BACKENDS.join(", ")}` });
};

const dynamicImport = (specifier: string): Promise<unknown> => import(specifier);

const isMissingModule = (error: unknown): boolean => {
  const code = (error as { code?: string } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
};

/** The wasm binaries ship in @tensorflow/tfjs-backend-wasm/dist; under Node they load from that directory. */
export const wasmDirectory = (): string => {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist") + "/";
};

const startWasm = async (importModule: (s: string) => Promise<unknown>): Promise<void> => {
  // The emscripten glue adds process-wide handlers that rethrow any unhandled rejection;
  // the host application's policy should stand, so they are removed again once wasm is up.
  const events = ["uncaughtException", "unhandledRejection"] as const;
  const before = new Set<unknown>(events.flatMap((e) => process.listeners(e as "uncaughtException")));
  try {
    const wasm = (await importModule("@tensorflow/tfjs-backend-wasm")) as { setWasmPaths: (prefix: string) => void };
    wasm.setWasmPaths(wasmDirectory());
    if (!(await tf.setBackend("wasm"))) throw new Error("tf.setBackend('wasm') returned false");
    await tf.ready();
  } finally {
    for (const event of events) {
      for (const listener of process.listeners(event as "uncaughtException")) {
        if (!before.has(listener)) process.removeListener(event, listener);
      }
    }
  }
};

const startCpu = async (importModule: (s: string) => Promise<unknown>): Promise<void> => {
  await importModule("@tensorflow/tfjs-backend-cpu");
  if (!(await tf.setBackend("cpu"))) throw new BackendError({ reason: "init_failed", message: "the cpu backend did not start" });
  await tf.ready();
};

const startTensorflow = async (importModule: (s: string) => Promise<unknown>): Promise<string> => {
  for (const name of TENSORFLOW_PACKAGES) {
    try {
      await importModule(name);
    } catch (error) {
      if (isMissingModule(error)) continue;
      throw new BackendError({ reason: "init_failed", message: `${name} is installed but failed to load: ${String(error)}`, cause: error });
    }
    if (tf.findBackendFactory("tensorflow") === null || !(await tf.setBackend("tensorflow"))) {
      throw new BackendError({
        reason: "init_failed",
        message: `${name} loaded but registered no "tensorflow" backend with esper's tfjs-core ${tf.version_core}: install a ${name} of the same version`,
      });
    }
    await tf.ready();
    return name;
  }
  throw new BackendError({
    reason: "missing_package",
    message:
      `ESPER_BACKEND=tensorflow needs libtensorflow bindings, which are not installed. ` +
      `Install one: npm install @tensorflow/tfjs-node (or @tensorflow/tfjs-node-gpu for CUDA), version ${tf.version_core}`,
  });
};

/**
 * Starts the backend named by `requested` (default: ESPER_BACKEND, else wasm) and says what runs.
 * wasm that cannot start falls back to cpu with a warning; a missing `tensorflow` package is an
 * error, because someone asked for it by name.
 */
export const initBackend = async (requested: string | undefined = process.env.ESPER_BACKEND, options: BackendOptions = {}): Promise<BackendInfo> => {
  const name = parseBackendName(requested);
  const importModule = options.importModule ?? dynamicImport;
  const warn = options.warn ?? ((m: string) => console.warn(m));
  if (name === "cpu") {
    await startCpu(importModule);
    return { requested: name, active: tf.getBackend() };
  }
  if (name === "tensorflow") {
    const packageName = await startTensorflow(importModule);
    return { requested: name, active: tf.getBackend(), packageName };
  }
  try {
    await startWasm(importModule);
    return { requested: name, active: tf.getBackend() };
  } catch (error) {
    const fallbackReason = `wasm backend failed to start (${error instanceof Error ? error.message : String(error)}); running on cpu`;
    warn(`esper: ${fallbackReason}`);
    await startCpu(importModule);
    return { requested: name, active: tf.getBackend(), fallbackReason };
  }
};
