"""Plays the reference implementation's Python clients against an esper worker run with
--topology reference, speaking only the reference's wire format (docs/protocol.md
"Reference topology"), with nothing but redis-py:

- its RedisStreamClient: XADD a LifecycleTransitionCommand to P.control.layer.L, then wait for
  the acknowledgement on P.control.ack.layer.L whose metadata.correlation_id is the command's id;
- its TelemetryPublisher: a TelemetryBatch (a SeedMetricsSnapshot) on P.telemetry.batch and a
  LayerHealthReport on P.telemetry.aggregated.layer.L, which the layer's guards must see;
- its EventPublisher's readers: the StateTransitionEvents on P.event.statetransitionevent.layer.L,
  each with only the fields the reference's StateTransitionEvent has (its from_dict takes no other).

Usage: reference_client.py REDIS_URL NAMESPACE LAYER. Prints one JSON line per check and "OK"
last; exits 1 with the reason on the first failure.
"""

import json
import sys
import time
import uuid
import zlib

import redis

URL, NS, LAYER = sys.argv[1], sys.argv[2], sys.argv[3]
SEED = 3

CONTROL = f"{NS}.control.layer.{LAYER}"
ACK = f"{NS}.control.ack.layer.{LAYER}"
TRANSITIONS = f"{NS}.event.statetransitionevent.layer.{LAYER}"
TELEMETRY_BATCH = f"{NS}.telemetry.batch"
TELEMETRY_AGGREGATED = f"{NS}.telemetry.aggregated.layer.{LAYER}"
DLQ = f"{NS}.dlq.layer.{{{LAYER}}}"

COMMON = {"message_id", "timestamp", "source", "version", "correlation_id", "metadata", "message_type"}
TRANSITION_FIELDS = COMMON | {
    "layer_id", "seed_id", "from_state", "to_state", "reason", "metrics_snapshot",
    "transition_duration_ms", "triggered_by", "success",
}

r = redis.Redis.from_url(URL)


def say(**what):
    print(json.dumps(what), flush=True)


def fail(why):
    print(json.dumps({"failed": why}), flush=True)
    sys.exit(1)


def message(message_type, **fields):
    """A message as the reference serialises one: common fields, then the type's own."""
    return {
        "message_id": str(uuid.uuid4()),
        "timestamp": time.time(),
        "source": "reference-client",
        "version": "1.0",
        "message_type": message_type,
        **fields,
    }


def publish(topic, msg):
    """XADD {data, type}: data is UTF-8 JSON, zlib-compressed past 1 KiB, as the reference writes."""
    data = json.dumps(msg).encode()
    if len(data) > 1024:
        data = zlib.compress(data)
    return r.xadd(topic, {"data": data, "type": msg["message_type"]}, maxlen=100000)


def body(fields):
    data = fields[b"data"]
    if data.startswith(b"x\x9c"):
        data = zlib.decompress(data)
    return json.loads(data.decode())


ack_cursor = "0-0"


def wait_ack(command_id, timeout_s=15.0):
    """The acknowledgement of command_id: read P.control.ack.layer.L until it comes."""
    global ack_cursor
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for _stream, entries in r.xread({ACK: ack_cursor}, block=500, count=100) or []:
            for entry_id, fields in entries:
                ack_cursor = entry_id
                if b"enc" in fields:
                    fail(f"ack entry {entry_id} has an enc field: not the reference format")
                if fields.get(b"type") != b"CommandResult":
                    fail(f"ack entry {entry_id} has type {fields.get(b'type')!r}, not CommandResult")
                ack = body(fields)
                if (ack.get("metadata") or {}).get("correlation_id") == command_id:
                    return ack
    fail(f"no acknowledgement of {command_id} on {ACK} within {timeout_s} s")


def transition(target):
    cmd = message(
        "LifecycleTransitionCommand",
        layer_id=LAYER, seed_id=SEED, target_state=target, parameters={},
        priority="normal", timeout_ms=5000, force=False, reason="reference client",
    )
    publish(CONTROL, cmd)
    ack = wait_ack(cmd["message_id"])
    if ack["metadata"].get("command_type") != "LifecycleTransitionCommand":
        fail(f"ack metadata.command_type is {ack['metadata'].get('command_type')!r}")
    for field in ("success", "execution_time_ms"):
        if field not in ack:
            fail(f"ack has no {field}: {ack}")
    return ack


# RedisStreamClient: commands in, acknowledgements out.
for target in ("GERMINATED", "TRAINING"):
    ack = transition(target)
    if ack["success"] is not True:
        fail(f"{target}: {ack}")
    say(check="ack", target=target, success=ack["success"], correlation_id=ack["metadata"]["correlation_id"], command_type=ack["metadata"]["command_type"])

# Without the trainer's telemetry the guard refuses: 100 epochs in TRAINING and a reconstruction loss are needed.
early = transition("GRAFTING")
if early["success"] is not False:
    fail(f"GRAFTING before any telemetry was accepted: {early}")
say(check="guard_refuses_without_telemetry", success=early["success"], error=early.get("error"))

# TelemetryPublisher: a batch of seed metrics (shared by every layer) and the layer's aggregated health.
now = time.time()
snapshot = message(
    "SeedMetricsSnapshot",
    layer_id=LAYER, seed_id=SEED, lifecycle_state="TRAINING", blueprint_id=7,
    metrics={"reconstruction_loss": 0.004, "loss": 0.2}, error_count=0, warning_count=0,
    checkpoint_id=None, compute_stats={}, grafting_info=None,
)
publish(TELEMETRY_BATCH, message("TelemetryBatch", messages=[snapshot], compression="zstd", batch_size=1))
health = message(
    "LayerHealthReport",
    layer_id=LAYER, total_seeds=8, active_seeds=1,
    health_metrics={str(SEED): {"lifecycle_state": 3.0, "loss": 0.2}},
    performance_summary={"epoch": 100, "loss_mean": 0.2},
    telemetry_window=[now - 10, now], anomalies=[],
)
publish(TELEMETRY_AGGREGATED, health)
say(check="telemetry_published", streams=[TELEMETRY_BATCH, TELEMETRY_AGGREGATED])

# The layer takes telemetry in on its own time: ask again until its guard sees it.
deadline = time.time() + 20
while True:
    ack = transition("GRAFTING")
    if ack["success"] is True:
        break
    if time.time() > deadline:
        fail(f"GRAFTING still refused after the telemetry: {ack}")
    time.sleep(0.2)
say(check="guard_passes_with_telemetry", target="GRAFTING", success=True)

# EventPublisher's readers: every transition on its type's stream, readable as the reference's StateTransitionEvent.
seen = []
for entry_id, fields in r.xrange(TRANSITIONS):
    if b"enc" in fields or fields.get(b"type") != b"StateTransitionEvent":
        fail(f"{TRANSITIONS} {entry_id}: not a reference StateTransitionEvent entry: {fields.keys()}")
    event = body(fields)
    extra = set(event) - TRANSITION_FIELDS
    if extra:
        fail(f"{TRANSITIONS} {entry_id}: fields the reference's StateTransitionEvent does not have: {sorted(extra)}")
    if event["layer_id"] == LAYER and event["seed_id"] == SEED:
        seen.append([event["from_state"], event["to_state"]])
expected = [["DORMANT", "GERMINATED"], ["GERMINATED", "TRAINING"], ["TRAINING", "GRAFTING"]]
if seen != expected:
    fail(f"transitions on {TRANSITIONS}: {seen}, expected {expected}")
say(check="transition_events", stream=TRANSITIONS, transitions=seen)

# Bad input on the reference control stream is dead-lettered, as on esper's own.
before = r.xlen(DLQ)
r.xadd(CONTROL, {"data": b"{not json", "type": "LifecycleTransitionCommand"})
deadline = time.time() + 15
while r.xlen(DLQ) <= before:
    if time.time() > deadline:
        fail(f"a bad entry on {CONTROL} was not dead-lettered to {DLQ}")
    time.sleep(0.1)
letter = r.xrevrange(DLQ, count=1)[0][1]
say(check="dead_letter", dlq=DLQ, stream=letter[b"stream"].decode(), code=letter[b"code"].decode())

print("OK", flush=True)
