import { fc } from "@fast-check/vitest";

/**
 * What the property tests that pin a fast decoder to its Schema (fast-command-decoder, fast-event-decoders)
 * generate: records whose fields are mostly valid and sometimes absent, null or wrong.
 */

export const ABSENT = Symbol("absent");

/**
 * Mostly a valid value (`validWeight` to 5 for the rest); sometimes absent, null, undefined, or
 * one of the wrong ones. A message with many required fields needs a higher weight, or too few
 * generated messages are valid for the agreement to say much about accepted values.
 */
export const field = <T>(valid: fc.Arbitrary<T>, wrong: readonly unknown[] = [], validWeight = 12) =>
  fc.oneof(
    { weight: validWeight, arbitrary: valid as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: fc.constant(ABSENT) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: wrong.length > 0 ? fc.constantFrom(...wrong) : fc.anything() },
  );

/** The record without its absent fields. */
export const strip = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== ABSENT));

export const anyMap = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue());
