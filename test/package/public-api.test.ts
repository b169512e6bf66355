/**
 * The curated API: every public name of every entry has a doc comment, docs/api.md lists exactly
 * them (written from those comments), and README's API tables name only what the entries export.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, test } from "vitest";
import { apiReference, ENTRY_SOURCES, publicNames, type PublicName } from "../../scripts/public-api.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
let names: PublicName[];
beforeAll(() => {
  names = publicNames();
}, 60_000);

describe("the public API", () => {
  test("every public name of every entry has a doc comment", () => {
    expect(names.length).toBeGreaterThan(100);
    expect(names.filter((n) => !n.documented).map((n) => `${n.entry}: ${n.name}`)).toEqual([]);
  });

  test("each entry is small: a user's needs, not the internals", () => {
    const count = (entry: keyof typeof ENTRY_SOURCES) => names.filter((n) => n.entry === entry && n.kind !== "type").length;
    console.log(Object.keys(ENTRY_SOURCES).map((e) => `${e}: ${count(e as keyof typeof ENTRY_SOURCES)} values`).join(", "));
    for (const internal of ["persistSeed", "seedSnapshotOf", "machineConfigs", "BRIDGE_DEFAULTS", "CODECS", "BusService"]) {
      expect(names.filter((n) => n.entry === "esper").map((n) => n.name)).not.toContain(internal);
    }
    // The data plane stays out of the main entry (it would load TensorFlow.js).
    for (const dataPlane of ["KasminaLayer", "KasminaTrainer", "initBackend", "trainerHooks"]) {
      expect(names.filter((n) => n.entry === "esper").map((n) => n.name)).not.toContain(dataPlane);
    }
  });

  test("docs/api.md is written from the doc comments and up to date (npm run docs:api)", () => {
    expect(readFileSync(`${REPO}docs/api.md`, "utf8")).toBe(apiReference(names));
  });

  test("README's API tables name only what the entries export, and README links the reference", () => {
    const readme = readFileSync(`${REPO}README.md`, "utf8");
    expect(readme).toContain("(docs/api.md)");
    const from = readme.indexOf("\n## API");
    const api = readme.slice(from, readme.indexOf("\n## ", from + 1));
    // The first column of each table row: the names README presents.
    const named = [...api.matchAll(/^\| ([^|]+)\|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([A-Za-z_]+)(?:\([^`]*\))?`/g)].map((n) => n[1]!));
    expect(named.length).toBeGreaterThan(15);
    const exported = new Set(names.map((n) => n.name));
    expect(named.filter((n) => !exported.has(n) && !n.startsWith("esper"))).toEqual([]);
    for (const entry of Object.keys(ENTRY_SOURCES)) expect(api).toContain(`\`${entry}\``);
  });
});
