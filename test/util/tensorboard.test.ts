import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { pretrain } from '../../src/moco/pretrain.js';
import { EventWriter, FILE_VERSION, readEvents, trimEvents } from '../../src/util/tensorboard.js';
import { tempDir } from '../helpers/oracle.js';
import { checkEvents, tfeventsReaderMissing } from '../helpers/tfevents.js';

const quiet = { log: () => undefined, plainProgress: true };

describe('TensorBoard event files', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  test('records carry both CRCs and a file version first; a damaged record is named', () => {
    const writer = new EventWriter(dir.path, { now: 1700000000.5 });
    writer.scalars(1, { loss: 0.25, lr: 1e-4 }, 1700000001);
    writer.scalars(2, { loss: Number.NaN });
    writer.scalars(3, { loss: 0.125 }, 1700000003);
    writer.close();
    assert.match(writer.path, /events\.out\.tfevents\.1700000000\.[^/]+$/);
    const events = readEvents(writer.path);
    assert.deepEqual(events[0], { wallTime: 1700000000.5, step: 0, fileVersion: FILE_VERSION, scalars: {} });
    assert.deepEqual(
      events.slice(1).map((e) => [e.step, e.scalars]),
      [
        [1, { loss: 0.25, lr: Math.fround(1e-4) }],
        [3, { loss: 0.125 }],
      ],
    );
    // A second writer in the same second gets its own file.
    const second = new EventWriter(dir.path, { now: 1700000000.5 });
    second.close();
    assert.equal(second.path, `${writer.path}.1`);

    assert.equal(trimEvents(dir.path, 2), 1);
    assert.deepEqual(
      readEvents(writer.path).map((e) => e.step),
      [0, 1],
    );
    const bytes = readFileSync(writer.path);
    bytes[bytes.length - 6]! ^= 1;
    writeFileSync(writer.path, bytes);
    assert.throws(() => readEvents(writer.path), /record at byte \d+: the data's CRC does not match/);
  });

  test(
    "a resumed pretraining's events equal metrics.jsonl, with no step twice, read by python3-protobuf",
    { skip: tfeventsReaderMissing() },
    async () => {
      const out = join(dir.path, 'pretrain');
      const config = {
        data: 'phantom:16,3,32',
        imageSize: 32,
        batchSize: 8,
        queue: 16,
        epochs: 2,
        logEvery: 1,
        out,
        cacheDir: join(dir.path, 'cache'),
        monitor: 'phantom:20,9,32',
      };
      const controller = new AbortController();
      const first = await pretrain(config, {
        ...quiet,
        signal: controller.signal,
        onStep: (step) => step === 2 && controller.abort(),
      });
      assert.equal(first.steps, 2);
      // As if the run had logged step 3 and died before its checkpoint.
      appendFileSync(join(out, 'metrics.jsonl'), `${JSON.stringify({ step: 3, epoch: 1, batch: 0, loss: 9 })}\n`);
      const dying = new EventWriter(out);
      dying.scalars(3, { loss: 9 });
      dying.close();
      const second = await pretrain(config, { ...quiet, resume: true });
      assert.equal(second.steps, 4);
      const check = checkEvents(out, 'metrics');
      assert.ok(readdirSync(out).filter((name) => name.startsWith('events.out.tfevents.')).length >= 2);
      const tags = new Set(check.found.map(([tag]) => tag));
      for (const tag of ['loss', 'top1', 'lr', 'imagesPerSecond', 'monitorAuc']) assert.ok(tags.has(tag), tag);
      assert.deepEqual(
        check.found.filter(([tag]) => tag === 'loss').map(([, step]) => step),
        [1, 2, 3, 4],
      );
    },
  );
});
