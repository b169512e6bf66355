import { sourceOf, type BlueprintKind } from "./blueprint-kinds.ts";

/**
 * What a blueprint costs, in the terms a user counts a network's parameters in. Pure and free of
 * tfjs, so a controller can budget growth (how many seeds of which kind fit in N parameters)
 * without building a layer; `KasminaLayer.parameterCount` uses the same definition.
 */

/** Hidden units of one seed's blueprint of `kind` in a layer whose seeds own `chunk` units. */
export const blueprintHidden = (kind: BlueprintKind, chunk: number): number => Math.max(1, Math.round(kind.hiddenPerChunk * chunk));

/** Rows of the encoder: the chunk for a residual kind, the layer's input width for one that reads the input. */
export const blueprintInputWidth = (kind: BlueprintKind, chunk: number, inputDim: number): number => (sourceOf(kind) === "input" ? inputDim : chunk);

/**
 * Parameters one grafted seed of `kind` adds to the model: encoder, encoder bias, decoder and
 * decoder bias. The reconstruction decoder that every bank row also holds is left out on
 * purpose: it is a training aid (the TRAINING objective's decoder, seed-forward.ts) that no
 * forward pass of the grown model reads once the seed grafts, so it is not part of the model a
 * user deploys or compares against a plain network of the same size.
 */
export const blueprintParameterCount = (kind: BlueprintKind, chunk: number, inputDim: number): number => {
  const hidden = blueprintHidden(kind, chunk);
  return blueprintInputWidth(kind, chunk, inputDim) * hidden + hidden + hidden * chunk + chunk;
};
