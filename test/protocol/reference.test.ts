import { describe, expect, it } from "vitest";
import { commandResult, stateTransitionEvent } from "../../src/protocol/make.ts";
import { referenceAck, referenceCopies } from "../../src/protocol/reference.ts";
import { streams } from "../../src/protocol/streams.ts";
import { decodeMessage } from "../../src/protocol/decode-message.ts";

const reference = streams("morphogenetic", "reference");
const result = commandResult({ correlation_id: "cmd-1", layer_id: "L1", seed_id: 3, success: true, code: "ok", execution_time_ms: 0.2, metadata: { trace: "t" } });
const transition = stateTransitionEvent({ layer_id: "L1", seed_id: 3, from_state: "DORMANT", to_state: "GERMINATED", transition_duration_ms: 0, triggered_by: "user", success: true });

describe("what a layer copies for reference readers", () => {
  it("acknowledges a command on P.control.ack.layer.L with its id and type in metadata, where the reference's handler puts them", () => {
    const [ack, ...more] = referenceCopies(reference, "L1", result, "LifecycleTransitionCommand");
    expect(more).toEqual([]);
    expect(ack!.stream).toBe("morphogenetic.control.ack.layer.L1");
    expect(ack!.message).toEqual({ ...result, metadata: { trace: "t", correlation_id: "cmd-1", command_type: "LifecycleTransitionCommand" } });
  });

  it("the acknowledgement is still a CommandResult esper reads", () => {
    expect(decodeMessage(JSON.parse(JSON.stringify(referenceAck(result, undefined))))._tag).toBe("Success");
    expect(referenceAck(result, undefined).metadata).toEqual({ trace: "t", correlation_id: "cmd-1" });
  });

  it("copies an event to its type's stream", () => {
    expect(referenceCopies(reference, "L1", transition)).toEqual([{ stream: "morphogenetic.event.statetransitionevent.layer.L1", message: transition }]);
  });

  it("copies nothing under esper's topology", () => {
    const esper = streams("morphogenetic", "esper");
    expect(referenceCopies(esper, "L1", result, "LifecycleTransitionCommand")).toEqual([]);
    expect(referenceCopies(esper, "L1", transition)).toEqual([]);
  });
});
