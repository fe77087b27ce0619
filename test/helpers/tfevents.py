"""An independent reader of TensorBoard event files, for the tests.

Usage: tfevents.py RUN_DIR KIND, where KIND is `metrics` (scalars of every
metrics.jsonl row: each numeric field but step, epoch and batch, at the row's
step) or `cells` (cells.jsonl: per cell f<fraction>-d<draw>, trainLoss per
epoch, valAuc per validation at its step, testAuc at the last validation's step).

Reads every events.out.tfevents.* file in RUN_DIR as TensorFlow records,
checking both masked CRC32Cs of each record (CRC32C computed here, bit by
bit), decodes the events with messages built from event.proto's and
summary.proto's published field numbers (google.protobuf's descriptor_pb2,
no generated code), and prints JSON: the files, whether each begins with
file_version "brain.Event:2", the scalars found, the expected ones, and any
steps logged twice for one tag.
"""
import glob
import json
import os
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def event_class():
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="tb_events_test.proto", package="tensorboard", syntax="proto3")
    summary = file.message_type.add(name="Summary")
    value = summary.nested_type.add(name="Value")
    value.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL)
    summary.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".tensorboard.Summary.Value")
    event = file.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    event.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    event.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    event.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".tensorboard.Summary")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorboard.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def read_records(path):
    data = open(path, "rb").read()
    at = 0
    records = []
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8 : at + 12])
        if length_crc != masked(header):
            raise SystemExit("%s: bad length CRC at %d" % (path, at))
        body = data[at + 12 : at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length : at + 16 + length])
        if body_crc != masked(body):
            raise SystemExit("%s: bad data CRC at %d" % (path, at))
        records.append(body)
        at += 16 + length
    return records


def f32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0]


def expected_scalars(run_dir, kind):
    out = []
    if kind == "metrics":
        for line in open(os.path.join(run_dir, "metrics.jsonl")):
            if not line.strip():
                continue
            row = json.loads(line)
            for key, value in row.items():
                if key in ("step", "epoch", "batch") or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                out.append([key, row["step"], f32(value)])
    else:
        for line in open(os.path.join(run_dir, "cells.jsonl")):
            if not line.strip():
                continue
            cell = json.loads(line)
            name = "f%s-d%d" % (format_fraction(cell["fraction"]), cell["draw"])
            history = cell["history"]
            for epoch in history["epochs"]:
                out.append([name + "/trainLoss", epoch["epoch"], f32(epoch["trainLoss"])])
            for evaluation in history["evaluations"]:
                out.append([name + "/valAuc", evaluation["step"], f32(evaluation["valAuc"])])
            last = history["evaluations"][-1]["step"] if history["evaluations"] else len(history["epochs"])
            out.append([name + "/testAuc", last, f32(cell["testAuc"])])
    return sorted(out)


def format_fraction(fraction):
    # JavaScript's String(number): 1 -> "1", 0.1 -> "0.1".
    return str(int(fraction)) if float(fraction).is_integer() else repr(float(fraction))


def main():
    run_dir, kind = sys.argv[1], sys.argv[2]
    Event = event_class()
    files = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    found = []
    first_versions = []
    for path in files:
        for i, body in enumerate(read_records(path)):
            event = Event()
            event.ParseFromString(body)
            if i == 0:
                first_versions.append(event.file_version)
                continue
            for value in event.summary.value:
                found.append([value.tag, event.step, value.simple_value])
    keys = [(tag, step) for tag, step, _ in found]
    duplicates = sorted(set(k for k in keys if keys.count(k) > 1))
    print(json.dumps({
        "files": [os.path.basename(p) for p in files],
        "firstVersions": first_versions,
        "found": sorted(found),
        "expected": expected_scalars(run_dir, kind),
        "duplicates": duplicates,
    }))


main()
