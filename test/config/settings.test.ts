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
import { readStudyConfig } from '../../src/study/config.js';
import { DOWNSTREAM_SETTINGS } from '../../src/downstream/settings.js';
import { PREDICT_SETTINGS } from '../../src/predict/settings.js';
import { tempDir } from '../helpers/oracle.js';

const TABLES: Record<string, readonly Setting[]> = {
  pretrain: PRETRAIN_SETTINGS,
  downstream: DOWNSTREAM_SETTINGS,
  predict: PREDICT_SETTINGS,
};

/** A value of another type than the setting's. */
function wrongValue(setting: Setting): unknown {
  return setting.type === 'string' ? 7 : 'seven';
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
          (typo === 'targets' ? '    tsak: a\n' : ''),
      });
      const expected: Record<string, RegExp> = {
        top: /unknown key 'seeed'/,
        pretrain: /unknown key 'pretrain\.bacthSize'/,
        training: /unknown key 'training\.ensembel'/,
        targets: /targets\[0\]: unknown key 'tsak'/,
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
      assert.equal(readStudyConfig(file).targets[0]!.name, 'source');
    } finally {
      dir.cleanup();
    }
  });
});
