/**
 * Every entry point's settings table is complete (each key has a flag or is
 * YAML-only, a default or "required", a check and help), and a typo in any
 * block of a study file is refused with the file and the key named.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { flagName, flagsOf, problemWith, resolve, type Setting } from '../../src/config/settings.js';
import { PRETRAIN_SETTINGS } from '../../src/moco/settings.js';
import {
  modeGrid,
  readStudyConfig,
  resolveStudyConfig,
  type StudyTarget,
  targetModes,
} from '../../src/study/config.js';
import { DOWNSTREAM_SETTINGS } from '../../src/downstream/settings.js';
import { DEMO_SETTINGS } from '../../src/study/demo.js';
import {
  STUDY_MODE_SETTINGS,
  STUDY_SETTINGS,
  STUDY_TARGET_SETTINGS,
  STUDY_TRAINING_SETTINGS,
} from '../../src/study/settings.js';
import { DOCTOR_SETTINGS } from '../../src/cli/doctor.js';
import { DATA_SETTINGS } from '../../src/cli/data.js';
import { SOURCE_SETTINGS } from '../../src/data/sources/index.js';
import { PREDICT_SETTINGS } from '../../src/predict/settings.js';
import { tempDir } from '../helpers/oracle.js';

const TABLES: Record<string, readonly Setting[]> = {
  pretrain: PRETRAIN_SETTINGS,
  downstream: DOWNSTREAM_SETTINGS,
  study: STUDY_SETTINGS,
  'study training': STUDY_TRAINING_SETTINGS,
  'study target': STUDY_TARGET_SETTINGS,
  'study target mode': STUDY_MODE_SETTINGS,
  demo: DEMO_SETTINGS,
  doctor: DOCTOR_SETTINGS,
  data: DATA_SETTINGS,
  source: SOURCE_SETTINGS,
  predict: PREDICT_SETTINGS,
};

/** A value of another type than the setting's. */
function wrongValue(setting: Setting): unknown {
  return setting.type === 'string' || setting.type === 'strings' ? 7 : 'seven';
}

describe('settings tables', () => {
  for (const [name, table] of Object.entries(TABLES)) {
    test(`${name}: every key has a flag, a default or "required", a check and help`, () => {
      const keys = table.map((s) => s.key);
      assert.equal(new Set(keys).size, keys.length, 'keys are unique');
      const flags = flagsOf(table).map((f) => f.name);
      assert.equal(new Set(flags).size, flags.length, 'flags are unique');
      for (const setting of table) {
        assert.match(setting.key, /^[a-z][A-Za-z]*$/, `${setting.key}: a camelCase YAML key`);
        const flag = flagName(setting);
        assert.ok(flag === undefined ? setting.flag === null : /^[a-z][a-z-]*$/.test(flag), `${setting.key}: flag`);
        const given = [setting.default, setting.required, setting.optional].filter((v) => v !== undefined);
        assert.equal(given.length, 1, `${setting.key}: exactly one of default, required, optional`);
        assert.ok(setting.help.length > 3, `${setting.key}: help`);
        if (setting.default !== undefined) {
          assert.equal(
            problemWith(setting, setting.default),
            undefined,
            `${setting.key}: its default passes its check`,
          );
        }
        // The check refuses a value of the wrong type, and resolving names the key and the place.
        assert.notEqual(problemWith(setting, wrongValue(setting)), undefined, `${setting.key}: checked`);
        const required = Object.fromEntries(table.filter((s) => s.required !== undefined).map((s) => [s.key, 'x']));
        assert.throws(
          () => resolve(table, { ...required, [setting.key]: wrongValue(setting) }, 'f.yaml: '),
          (error: Error) => error.message.startsWith(`f.yaml: ${setting.key}`),
          `${setting.key}: resolve names it`,
        );
      }
      assert.throws(
        () => resolve(table, { bacthSize: 8 }, 'f.yaml: '),
        /^RangeError: f\.yaml: unknown key 'bacthSize'/,
      );
    });
  }

  test('a typo in any block of a study file names the file and the key', () => {
    const dir = tempDir();
    try {
      const blocks = (typo: string): Record<string, string> => ({
        top: typo === 'top' ? 'seeed: 1\n' : '',
        pretrain: `pretrain:\n  data: phantom:8\n${typo === 'pretrain' ? '  bacth-size: 8\n' : ''}`,
        training: `training:\n  lr: 0.001\n${typo === 'training' ? '  ensembel: 2\n' : ''}`,
        targets:
          'targets:\n  - name: source\n    train: phantom:8\n    test: phantom:8\n' +
          (typo === 'targets' ? '    tsak: a\n' : '') +
          `    finetune:\n      epochs: 2\n${typo === 'mode' ? '      drwas: 2\n' : ''}`,
      });
      const expected: Record<string, RegExp> = {
        top: /unknown key 'seeed'/,
        pretrain: /unknown key 'pretrain\.bacthSize'/,
        training: /unknown key 'training\.ensembel'/,
        targets: /targets\[0\]: unknown key 'tsak'/,
        mode: /targets\[0\]: unknown key 'finetune\.drwas'/,
      };
      for (const typo of Object.keys(expected)) {
        const file = join(dir.path, `${typo}.yaml`);
        writeFileSync(file, Object.values(blocks(typo)).join(''));
        assert.throws(
          () => readStudyConfig(file),
          (error: Error) => error.message.includes(file) && expected[typo]!.test(error.message),
          typo,
        );
      }
      // Without a typo the same file is read.
      const file = join(dir.path, 'fine.yaml');
      writeFileSync(file, Object.values(blocks('none')).join(''));
      const config = readStudyConfig(file);
      assert.equal(config.targets[0]!.name, 'source');
      assert.equal(config.targets[0]!.finetune?.epochs, 2);
    } finally {
      dir.cleanup();
    }
  });

  test("a target's mode block sets that mode's grid; the rest falls back to the target, then the study", () => {
    const config = resolveStudyConfig({
      fractions: [1, 0.1],
      draws: 4,
      training: { 'linear-epochs': 7 },
      pretrain: { data: 'phantom:8' },
      targets: [
        { train: 'phantom:8', test: 'phantom:8', finetune: { fractions: [0.5, 1, 0.5], epochs: 2 } },
        { name: 'tb', train: 'phantom:8', test: 'phantom:8', draws: 2, linear: { draws: 3 } },
      ],
    });
    const [source, tb] = config.targets as [StudyTarget, StudyTarget];
    assert.deepEqual(modeGrid(config, source, 'finetune'), { fractions: [0.5, 1], draws: 4, epochs: 2 });
    assert.deepEqual(modeGrid(config, source, 'linear'), { fractions: [0.1, 1], draws: 4, epochs: 7 });
    assert.deepEqual(modeGrid(config, tb, 'linear'), { fractions: [0.1, 1], draws: 3, epochs: 7 });
    assert.deepEqual(modeGrid(config, tb, 'finetune'), { fractions: [0.1, 1], draws: 2, epochs: 0 });
    assert.deepEqual(targetModes(config, source), ['linear', 'finetune']);
    const probedOnly = resolveStudyConfig({
      pretrain: { data: 'phantom:8' },
      targets: [
        { train: 'phantom:8', test: 'phantom:8' },
        { name: 'tb', train: 'phantom:8', test: 'phantom:8', modes: ['linear', 'linear'] },
      ],
    });
    assert.deepEqual(targetModes(probedOnly, probedOnly.targets[0]!), ['linear', 'finetune']);
    assert.deepEqual(targetModes(probedOnly, probedOnly.targets[1]!), ['linear']);
    assert.throws(
      () =>
        resolveStudyConfig(
          { pretrain: { data: 'phantom:8' }, targets: [{ train: 'phantom:8', test: 'phantom:8', modes: ['knn'] }] },
          'f.yaml',
        ),
      /f\.yaml: targets\[0\]: modes/,
    );
    assert.throws(
      () =>
        resolveStudyConfig(
          {
            pretrain: { data: 'phantom:8' },
            targets: [{ train: 'phantom:8', test: 'phantom:8', linear: { draws: 0 } }],
          },
          'f.yaml',
        ),
      /^RangeError: f\.yaml: targets\[0\]: linear\.draws must be a positive integer, got 0/,
    );
  });
});
