/**
 * What a layer writes, under the reference topology, besides its event stream: the copies that
 * the reference implementation's Python clients wait for where they wait for them
 * (docs/protocol.md "Reference topology"). Pure: the bridge encodes and commits them with the
 * rest of the batch, so a copy exists exactly when the answer or event it copies does.
 *
 * - The answer to a command also goes to `P.control.ack.layer.L`: the same CommandResult, its
 *   `metadata` carrying `correlation_id` (the command's message_id) and `command_type` (the
 *   command's message type), where the reference's command handler puts them.
 * - A StateTransitionEvent or BlueprintEvent also goes to the stream of its type,
 *   `P.event.statetransitionevent.layer.L`, as the reference's EventPublisher writes it.
 */
import type { CommandResult, Message } from "./messages.ts";
import type { Streams } from "./streams.ts";

/** One copy of a message for a reference reader: where it goes, and the message as written there. */
export interface ReferenceCopy {
  readonly stream: string;
  readonly message: Message;
}

const NONE: readonly ReferenceCopy[] = [];

/** The acknowledgement of a command as the reference writes it: the result, with `metadata.correlation_id` and `metadata.command_type`. */
export const referenceAck = (result: CommandResult, commandType: string | undefined): CommandResult => ({
  ...result,
  metadata: { ...result.metadata, correlation_id: result.correlation_id, ...(commandType !== undefined ? { command_type: commandType } : {}) },
});

/**
 * The copies of `message` (written to `layerId`'s event stream) that reference readers read, or
 * none under the esper topology. `commandType`: for a CommandResult, the type of the command it
 * answers, when it could be read.
 */
export const referenceCopies = (names: Streams, layerId: string, message: Message, commandType?: string): readonly ReferenceCopy[] => {
  const reference = names.reference;
  if (reference === undefined) return NONE;
  switch (message.message_type) {
    case "CommandResult":
      return [{ stream: reference.ack(layerId), message: referenceAck(message, commandType) }];
    case "StateTransitionEvent":
    case "BlueprintEvent":
    case "CheckpointEvent":
      return [{ stream: reference.eventsOf(message.message_type, layerId), message }];
    default:
      return NONE;
  }
};
