/**
 * The public names of each entry and whether each has a doc comment, read with TypeScript's
 * compiler API from the sources (the same declarations the .d.ts files are emitted from).
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type * as TS from "typescript5";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
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
  readonly kind: "value" | "type";
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
      out.push({ entry, name: exported.name, documented, kind: target.flags & ts.SymbolFlags.Value ? "value" : "type" });
    }
  }
  return out;
};
