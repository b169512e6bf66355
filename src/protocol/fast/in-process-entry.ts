import { IN_PROCESS, type EntryFields } from "../../bus/bus.ts";
import type { Message } from "../messages.ts";

/** How the bytes are made when asked for: encodeEntry with the options the entry was made with. */
export type EntryEncoder<O> = (message: Message, options: O) => EntryFields;

/**
 * An entry that never leaves this process carries its message as an object beside its fields,
 * and makes its bytes only if somebody reads `data` (a dead letter, a range over the embedded
 * bus, a copy into Redis). In process, encoding a message only for the next line to decode it
 * cost more than the seed transition the message asked for.
 *
 * The message sits in private fields: Redis hands back plain fields, so an attached message can
 * only come from code in this process, and spreading the fields into a dead letter or a replay
 * copies the bytes (`data` and `sig` are own, enumerable accessors), not the attachment.
 *
 * A class rather than an object literal with getters: a literal makes two closures, a context
 * and a property array per entry, and the embedded bus keeps every entry for as long as its
 * stream does, so that garbage was copied by every scavenge.
 */
class InProcessFields<O = unknown> {
  declare readonly [IN_PROCESS]: true;
  readonly type: string;
  declare readonly enc?: string;
  readonly #message: Message;
  readonly #trusted: boolean;
  readonly #encode: EntryEncoder<O>;
  readonly #options: O;
  #encoded: EntryFields | undefined;

  constructor(message: Message, trusted: boolean, enc: string | undefined, signed: boolean, encode: EntryEncoder<O>, options: O) {
    this.type = message.message_type;
    if (enc !== undefined) (this as { enc?: string }).enc = enc;
    this.#message = message;
    this.#trusted = trusted;
    this.#encode = encode;
    this.#options = options;
    this.#encoded = undefined;
    Object.defineProperty(this, "data", DATA);
    if (signed) Object.defineProperty(this, "sig", SIG);
  }

  static encoded<O>(fields: InProcessFields<O>): EntryFields {
    return (fields.#encoded ??= fields.#encode(fields.#message, fields.#options));
  }

  static attachment(fields: InProcessFields): Attachment {
    return { message: fields.#message, trusted: fields.#trusted };
  }
}

// Tells a bus measuring entries (maxEntryBytes) that this one has no bytes to measure. On the
// prototype, not each entry: a symbol field per instance cost a slower shape on every entry, and
// a copy of the fields (a spread) is plain bytes again, as it should be.
Object.defineProperty(InProcessFields.prototype, IN_PROCESS, { value: true, enumerable: false });

// One getter shared by every entry (not a closure each), so entries share one hidden class.
const DATA: PropertyDescriptor = {
  enumerable: true,
  get(this: InProcessFields) {
    return InProcessFields.encoded(this).data;
  },
};
const SIG: PropertyDescriptor = {
  enumerable: true,
  get(this: InProcessFields) {
    return InProcessFields.encoded(this).sig;
  },
};

export interface Attachment {
  readonly message: Message;
  /**
   * Built by esper's own builders (results, events), so the reader need not check it. A message
   * from a caller (a command handed to `send`) is not trusted: the reader checks its schema.
   */
  readonly trusted: boolean;
}

/**
 * Fields whose `data` (and `sig`, when `signed`) are computed by `encode` on first read and kept;
 * `type` and `enc` are plain values.
 */
export const attachedEntry = <O>(
  message: Message,
  trusted: boolean,
  enc: string | undefined,
  signed: boolean,
  encode: EntryEncoder<O>,
  options: O,
): EntryFields => new InProcessFields(message, trusted, enc, signed, encode, options) as unknown as EntryFields;

/** The message attached to fields read in this process, if any. */
export const attachmentOf = (fields: object): Attachment | undefined =>
  fields instanceof InProcessFields ? InProcessFields.attachment(fields) : undefined;
