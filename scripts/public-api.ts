/**
 * The public API as TypeScript sees it: each entry's exported names, their kind and their doc
 * comment, read with the compiler API from the sources (the declarations the .d.ts files are
 * emitted from). docs/api.md is written from it (`npm run docs:api`), and a test holds both the
 * doc comments and that file to it.
 */
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type * as TS from "typescript5";

const REPO = fileURLToPath(new URL("../", import.meta.url));
// TypeScript 5's compiler API (the `typescript` devDependency is TypeScript 7, which has none in JavaScript).
const ts = createRequire(import.meta.url)("typescript5") as typeof TS;

/** Each entry's source, by the name a user imports it by. */
export const ENTRY_SOURCES = {
  esper: "src/index.ts",
  "esper/kasmina": "src/api/kasmina.ts",
  "esper/protocol": "src/api/protocol.ts",
  "esper/effect": "src/api/effect.ts",
} as const;

export interface PublicName {
  readonly entry: keyof typeof ENTRY_SOURCES;
  readonly name: string;
  readonly documented: boolean;
  readonly kind: "function" | "class" | "constant" | "type";
  /** The doc comment's first paragraph, on one line. */
  readonly summary: string;
}

export const publicNames = (): PublicName[] => {
  const files = Object.values(ENTRY_SOURCES).map((f) => REPO + f);
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: ["node"],
  });
  const checker = program.getTypeChecker();
  const out: PublicName[] = [];
  for (const [entry, file] of Object.entries(ENTRY_SOURCES) as [keyof typeof ENTRY_SOURCES, string][]) {
    const source = program.getSourceFile(REPO + file)!;
    const moduleSymbol = checker.getSymbolAtLocation(source)!;
    for (const exported of checker.getExportsOfModule(moduleSymbol)) {
      const target = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const declarations = target.declarations ?? [];
      const documented =
        target.getDocumentationComment(checker).length > 0 ||
        declarations.some((d) => ts.getJSDocCommentsAndTags(d).length > 0 || (ts.isVariableDeclaration(d) && ts.getJSDocCommentsAndTags(d.parent.parent).length > 0));
      const text = ts.displayPartsToString(target.getDocumentationComment(checker));
      const summary = text.split(/\n\s*\n/)[0]!.replace(/\s+/g, " ").trim();
      // `export type { X }` of a value (a Schema's type, say) gives users the type only.
      const typeOnly = (exported.declarations ?? []).some((d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly));
      const kind =
        typeOnly
          ? "type"
          : target.flags & ts.SymbolFlags.Class
          ? "class"
          : target.flags & ts.SymbolFlags.Function || (target.flags & ts.SymbolFlags.Variable && checker.getTypeOfSymbol(target).getCallSignatures().length > 0)
            ? "function"
            : target.flags & ts.SymbolFlags.Value
              ? "constant"
              : "type";
      out.push({ entry, name: exported.name, documented, kind, summary });
    }
  }
  return out;
};

const ENTRY_PURPOSE: Record<keyof typeof ENTRY_SOURCES, string> = {
  esper: "The control and message planes from Promise code: systems, layers and their actors, the machines, buses, the client, Tamiyo. Loads no TensorFlow.js.",
  "esper/kasmina": "The data plane on TensorFlow.js (a peer dependency): KasminaLayer, the trainer, blueprints, checkpoints. The only entry that loads tfjs.",
  "esper/protocol": "The wire format, for programs that read or write esper's streams: schemas, builders, entry encoding, stream names, limits.",
  "esper/effect": "The same capabilities as Effects that acquire their resources in the caller's Scope, for Effect code.",
};

/** docs/api.md: every public name of every entry, with the first paragraph of its doc comment. */
export const apiReference = (names: readonly PublicName[] = publicNames()): string => {
  const lines = [
    "# API reference",
    "",
    "Generated from the doc comments by `npm run docs:api`; a test fails when it is out of date. Anything not listed",
    "here is internal. The README shows each entry at work; hover a name in your editor for its full comment.",
    "",
  ];
  for (const entry of Object.keys(ENTRY_SOURCES) as (keyof typeof ENTRY_SOURCES)[]) {
    lines.push(`## \`${entry}\``, "", ENTRY_PURPOSE[entry], "", "| name | kind | what |", "|---|---|---|");
    for (const n of [...names.filter((x) => x.entry === entry)].sort((a, b) => a.name.localeCompare(b.name))) {
      lines.push(`| \`${n.name}\` | ${n.kind} | ${n.summary.replace(/\|/g, "\\|")} |`);
    }
    lines.push("");
  }
  return lines.join("\n");
};

// `tsx scripts/public-api.ts`: writes docs/api.md.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(REPO + "docs/api.md", apiReference());
  console.log("wrote docs/api.md");
}
