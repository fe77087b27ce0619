/** The source options as a settings table: checks, conversion, and the options a kind does not read. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { sourceOptionsFromFlags } from '../../src/cli/source-flags.js';
import { flagsOf } from '../../src/config/settings.js';
import {
  openSource,
  OPTION_KINDS,
  parseUncertainty,
  resolveSourceOptions,
  SOURCE_SETTING_KEYS,
  SOURCE_SETTINGS,
} from '../../src/data/sources/index.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-source-settings-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('resolveSourceOptions: settings become openSource options; nothing given is nothing set', () => {
  assert.deepEqual(resolveSourceOptions({}), {});
  assert.deepEqual(
    resolveSourceOptions({
      uncertain: 'Edema=ones, zeros',
      blank: 'ignore',
      views: 'frontal',
      projections: 'AP, PA',
      split: 'test',
      minReaders: 2,
      imageRoot: '/data/images',
      patientPattern: '^(\\d+)_',
      labelColumns: 'a,b',
    }),
    {
      uncertain: { Edema: 'ones', '*': 'zeros' },
      blank: 'ignore',
      views: ['frontal'],
      projections: ['AP', 'PA'],
      split: 'test',
      minReaders: 2,
      imageRoot: '/data/images',
      patientPattern: '^(\\d+)_',
      labelColumns: ['a', 'b'],
    },
  );
});

test('resolveSourceOptions: errors name the key (after where) and what was expected', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ minReaders: 0 }, /^RangeError: study.yaml: minReaders must be a positive integer, got 0$/],
    [{ minReaders: 1.5 }, /minReaders must be a positive integer, got 1.5/],
    [
      { uncertain: 'maybe' },
      /^RangeError: study.yaml: uncertain 'maybe': expected ones, zeros, ignore or TASK=POLICY$/,
    ],
    [{ blank: 'one' }, /blank must be one of 'zeros', 'ignore', got 'one'/],
    [
      { views: 'frontal,oblique' },
      /^RangeError: study.yaml: views: unknown view 'oblique'; expected frontal or lateral$/,
    ],
    [{ patientPattern: '(x' }, /^RangeError: study.yaml: patientPattern '\(x' is not a regular expression/],
    [{ patientPattern: 'x+' }, /^RangeError: study.yaml: patientPattern 'x\+' has no capture group/],
    [{ split: 3 }, /split must be text, got 3/],
    [{ frontal: true }, /unknown key 'frontal'; known keys: uncertain, blank, frontalOnly, views/],
  ];
  for (const [partial, message] of cases) assert.throws(() => resolveSourceOptions(partial, 'study.yaml: '), message);
});

test('the table: every option of SourceOptions once, each with a flag; kind-specific ones are checked', async () => {
  assert.deepEqual(new Set(SOURCE_SETTING_KEYS).size, SOURCE_SETTINGS.length);
  for (const key of Object.keys(OPTION_KINDS)) assert.ok(SOURCE_SETTING_KEYS.includes(key), key);
  assert.deepEqual(
    flagsOf(SOURCE_SETTINGS).map((flag) => flag.name),
    [
      'uncertain',
      'blank',
      'frontal',
      'view',
      'projection',
      'split',
      'min-readers',
      'image-root',
      'patient-pattern',
      'path-column',
      'labels',
      'patient-column',
      'study-column',
    ],
  );
  assert.deepEqual(parseUncertainty('ones'), { '*': 'ones' });
  const csv = join(root, 'labels.csv');
  writeFileSync(csv, 'Path,Effusion\na.png,1\n');
  await assert.rejects(
    openSource(`csv:${csv}`, { split: 'test' }),
    /source 'csv:.*': option split applies to nih, mimic sources, not csv/,
  );
  await assert.rejects(
    openSource('phantom:4', { minReaders: 2 }),
    /option minReaders applies to vindr sources, not phantom/,
  );
  // The label policies and the filters apply to every kind.
  assert.equal(
    (await openSource(`csv:${csv}`, { uncertain: 'ones', patientPattern: '(a)' })).records[0]?.patientId,
    'a',
  );
});

test('the command-line flags: repeated list flags add up, a bad value names the flag', () => {
  assert.deepEqual(
    sourceOptionsFromFlags({ view: ['frontal'], projection: ['AP', 'pa,LL'], 'min-readers': '3', frontal: true }),
    { views: ['frontal'], projections: ['AP', 'pa', 'LL'], minReaders: 3, frontalOnly: true },
  );
  assert.deepEqual(sourceOptionsFromFlags({ uncertain: ['ones', 'Edema=zeros'] }).uncertain, {
    '*': 'ones',
    Edema: 'zeros',
  });
  assert.throws(
    () => sourceOptionsFromFlags({ 'min-readers': '0' }),
    /^RangeError: --min-readers must be a positive integer, got 0$/,
  );
  assert.throws(
    () => sourceOptionsFromFlags({ 'min-readers': 'two' }),
    /--min-readers must be a positive integer, got 'two'/,
  );
  assert.throws(
    () => sourceOptionsFromFlags({ uncertain: ['maybe'] }),
    /--uncertain 'maybe': expected ones, zeros, ignore or TASK=POLICY/,
  );
  assert.throws(() => sourceOptionsFromFlags({ view: ['side'] }), /--view: unknown view 'side'/);
});
