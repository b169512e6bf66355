import * as tf from "@tensorflow/tfjs-core";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BackendError, initBackend, parseBackendName, wasmDirectory } from "../../src/kasmina/index.ts";

const missing = (specifier: string) => Object.assign(new Error(`Cannot find package '${specifier}'`), { code: "ERR_MODULE_NOT_FOUND" });

const failure = async (promise: Promise<unknown>): Promise<BackendError> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(BackendError);
    return error as BackendError;
  }
  throw new Error("expected a BackendError");
};

describe("backend selection", () => {
  it("defaults to wasm, whose binaries it finds in the installed package, and says so", async () => {
    expect(parseBackendName(undefined)).toBe("wasm");
    expect(parseBackendName(" WASM ")).toBe("wasm");
    expect(existsSync(join(wasmDirectory(), "tfjs-backend-wasm-simd.wasm"))).toBe(true);
    // The emscripten glue installs handlers that rethrow any unhandled rejection; none may stay.
    const handlers = process.listeners("unhandledRejection").length + process.listeners("uncaughtException").length;
    const info = await initBackend(undefined);
    expect(info).toEqual({ requested: "wasm", active: "wasm" });
    expect(tf.getBackend()).toBe("wasm");
    expect(process.listeners("unhandledRejection").length + process.listeners("uncaughtException").length).toBe(handlers);
  });

  it("switches to cpu on request", async () => {
    expect(await initBackend("cpu")).toEqual({ requested: "cpu", active: "cpu" });
    await initBackend("wasm");
  });

  it("rejects a backend name it does not know, naming the choices", async () => {
    const error = await failure(initBackend("webgpu"));
    expect(error.reason).toBe("unknown_backend");
    expect(error.message).toMatch(/wasm, cpu, tensorflow/);
  });

  it("says how to install tfjs-node when the tensorflow backend is asked for and neither package is installed", async () => {
    const tried: string[] = [];
    const error = await failure(
      initBackend("tensorflow", {
        importModule: async (specifier) => {
          tried.push(specifier);
          throw missing(specifier);
        },
      }),
    );
    expect(tried).toEqual(["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]);
    expect(error.reason).toBe("missing_package");
    expect(error.message).toMatch(/npm install @tensorflow\/tfjs-node/);
    expect(tf.getBackend()).toBe("wasm");
  });

  it("reports a tfjs-node that is installed but registers no backend with this tfjs", async () => {
    const error = await failure(initBackend("tensorflow", { importModule: async () => ({}) }));
    expect(error.reason).toBe("init_failed");
    expect(error.message).toMatch(/same version/);
  });

  it("falls back to cpu with a warning when wasm cannot start", async () => {
    const warnings: string[] = [];
    const info = await initBackend("wasm", {
      warn: (m) => warnings.push(m),
      importModule: async (specifier) => {
        if (specifier === "@tensorflow/tfjs-backend-wasm") throw new Error("no WebAssembly here");
        return import(specifier);
      },
    });
    expect(info.active).toBe("cpu");
    expect(info.fallbackReason).toMatch(/no WebAssembly here/);
    expect(warnings).toHaveLength(1);
    await initBackend("wasm");
  });
});
