/**
 * TensorBoard event files: scalars written beside `metrics.jsonl` so that
 * `tensorboard --logdir runs/` plots a run's loss, learning rate and AUCs.
 *
 * The file is TensorFlow's record format: each record is its length (uint64,
 * little-endian), the masked CRC32C of those 8 bytes, the data, and the masked
 * CRC32C of the data. The data are protobuf `Event` messages (event.proto,
 * summary.proto): the first carries `file_version: "brain.Event:2"`, the others
 * `{ wall_time, step, summary { value { tag, simple_value } } }`.
 */
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { crc32c } from '@aws-crypto/crc32c';
import protobuf from 'protobufjs';

// The fields of TensorFlow's Event and Summary that scalars use, with their published numbers.
const SummaryValue = new protobuf.Type('Value')
  .add(new protobuf.Field('tag', 1, 'string'))
  .add(new protobuf.Field('simpleValue', 2, 'float'));
const Summary = new protobuf.Type('Summary').add(new protobuf.Field('value', 1, 'Value', 'repeated')).add(SummaryValue);
const Event = new protobuf.Type('Event')
  .add(new protobuf.Field('wallTime', 1, 'double'))
  .add(new protobuf.Field('step', 2, 'int64'))
  .add(new protobuf.Field('fileVersion', 3, 'string'))
  .add(new protobuf.Field('summary', 5, 'Summary'))
  .add(Summary);
new protobuf.Root().add(Event);

/** The first event of every file, which TensorBoard checks. */
export const FILE_VERSION = 'brain.Event:2';

/** An event as read back: a file version, or scalars at a step. */
export interface ScalarEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  /** Tag → value (float32, as stored). */
  scalars: Record<string, number>;
}

/** The masked CRC32C TensorFlow's records carry: rotated right by 15 bits, plus a constant. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One record: length, its masked CRC, the data, their masked CRC. */
export function eventRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

function encodeEvent(event: {
  wallTime: number;
  step?: number;
  fileVersion?: string;
  scalars?: Record<string, number>;
}): Uint8Array {
  const message: Record<string, unknown> = { wallTime: event.wallTime };
  if (event.step !== undefined) message.step = event.step;
  if (event.fileVersion !== undefined) message.fileVersion = event.fileVersion;
  if (event.scalars !== undefined && Object.keys(event.scalars).length > 0) {
    message.summary = { value: Object.entries(event.scalars).map(([tag, simpleValue]) => ({ tag, simpleValue })) };
  }
  return Event.encode(Event.fromObject(message)).finish();
}

/** Whether a file name is an event file's (TensorBoard reads every file whose name holds `tfevents`). */
export function isEventFile(name: string): boolean {
  return name.startsWith('events.out.tfevents.');
}

/**
 * Appends scalars to a new event file in `dir`, `events.out.tfevents.<secs>.<host>`
 * (with `.1`, `.2`, … where a file of that name exists). Each call writes
 * through to the file, so a killed run keeps what it logged.
 */
export class EventWriter {
  readonly path: string;
  private fd: number | undefined;

  constructor(dir: string, options: { now?: number } = {}) {
    const now = options.now ?? Date.now() / 1000;
    const base = join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}`);
    let path = base;
    for (let n = 1; existsSync(path); n++) path = `${base}.${n}`;
    this.path = path;
    this.fd = openSync(path, 'a');
    this.write(encodeEvent({ wallTime: now, fileVersion: FILE_VERSION }));
  }

  /** Writes `scalars` (tag → value; non-finite values are skipped) at `step`. */
  scalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    const finite = Object.fromEntries(Object.entries(scalars).filter(([, v]) => Number.isFinite(v)));
    if (Object.keys(finite).length === 0) return;
    this.write(encodeEvent({ wallTime, step, scalars: finite }));
  }

  private write(data: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`${this.path}: the event file is closed`);
    writeSync(this.fd, eventRecord(data));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The numeric fields of a metrics row other than its position (`step`, `epoch`, `batch`): its scalars. */
export function rowScalars(row: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(row)) {
    if (key === 'step' || key === 'epoch' || key === 'batch') continue;
    if (typeof value === 'number') out[key] = value;
  }
  return out;
}

/**
 * Reads an event file's records, checking both CRCs of each; an error names
 * the file, the record's offset and what was wrong (a file cut short by a kill
 * loses only its last, incomplete record, which is dropped).
 */
export function readEvents(path: string): ScalarEvent[] {
  const bytes = readFileSync(path);
  const events: ScalarEvent[] = [];
  let at = 0;
  while (at + 12 <= bytes.length) {
    const length = Number(bytes.readBigUInt64LE(at));
    if (bytes.readUInt32LE(at + 8) !== maskedCrc32c(bytes.subarray(at, at + 8))) {
      throw new Error(`${path}: record at byte ${at}: the length's CRC does not match`);
    }
    const end = at + 12 + length + 4;
    if (end > bytes.length) break;
    const data = bytes.subarray(at + 12, at + 12 + length);
    if (bytes.readUInt32LE(at + 12 + length) !== maskedCrc32c(data)) {
      throw new Error(`${path}: record at byte ${at}: the data's CRC does not match`);
    }
    const message = Event.toObject(Event.decode(data), { longs: Number }) as {
      wallTime?: number;
      step?: number;
      fileVersion?: string;
      summary?: { value?: { tag: string; simpleValue?: number }[] };
    };
    events.push({
      wallTime: message.wallTime ?? 0,
      step: message.step ?? 0,
      ...(message.fileVersion === undefined ? {} : { fileVersion: message.fileVersion }),
      scalars: Object.fromEntries((message.summary?.value ?? []).map((v) => [v.tag, v.simpleValue ?? 0])),
    });
    at = end;
  }
  return events;
}

/** Removes the event files in `dir` (those of a run started afresh); returns how many. */
export function removeEvents(dir: string): number {
  if (!existsSync(dir)) return 0;
  const files = readdirSync(dir).filter(isEventFile);
  for (const name of files) rmSync(join(dir, name));
  return files.length;
}

/**
 * Drops, from every event file in `dir`, the scalars of steps after `step`
 * (those a run logged and then lost by dying before its checkpoint), as the
 * metrics rows are cut back on resume; returns how many events went.
 */
export function trimEvents(dir: string, step: number): number {
  if (!existsSync(dir)) return 0;
  let dropped = 0;
  for (const name of readdirSync(dir).filter(isEventFile)) {
    const path = join(dir, name);
    const events = readEvents(path);
    const kept = events.filter((event) => event.fileVersion !== undefined || event.step <= step);
    if (kept.length === events.length) continue;
    dropped += events.length - kept.length;
    const temporary = `${path}.${process.pid}.tmp`;
    const records = kept.map((event) =>
      eventRecord(
        encodeEvent(
          event.fileVersion === undefined ? event : { wallTime: event.wallTime, fileVersion: event.fileVersion },
        ),
      ),
    );
    writeFileSync(temporary, Buffer.concat(records));
    renameSync(temporary, path);
  }
  return dropped;
}
