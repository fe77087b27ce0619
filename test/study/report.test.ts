import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { Prng } from '../../src/data/prng.js';
import sharp from 'sharp';

import { aggregateByStudy, auc, bootstrapAuc, bootstrapAucDifference, type Interval } from '../../src/eval/index.js';
import {
  formatDifference,
  formatFraction,
  summarizeStudy,
  writeReport,
  type StudyReport,
} from '../../src/study/report.js';
import type { Initialization, StudyCell, StudyResults, TrainingMode } from '../../src/study/results.js';
import { tempDir } from '../helpers/oracle.js';

const REPLICATES = 200;
const SEED = 7;

function gaussian(random: Prng): number {
  return Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
}

/** A test set of `studies` studies with `views` images each, classes alternating. */
function testSet(target: string, studies: number, views: number): StudyResults['tests'][string] {
  const ids: string[] = [];
  const studyIds: string[] = [];
  const labels: number[] = [];
  for (let s = 0; s < studies; s++) {
    for (let v = 0; v < views; v++) {
      ids.push(`${target}/s${s}/v${v}`);
      studyIds.push(`${target}/s${s}`);
      labels.push(s % 2);
    }
  }
  return { ids, studyIds, labels };
}

/**
 * A study whose MoCo scores separate the classes far better than the
 * baseline's (a shift of 2.5 against 0.6 standard deviations), with the cells
 * listed in a shuffled fraction order.
 */
function constructedStudy(): StudyResults {
  const random = new Prng(11);
  const tests = { source: testSet('source', 60, 2), tb: testSet('tb', 40, 1) };
  const grid: Record<string, { task: string; fractions: [number, number][] }> = {
    source: {
      task: 'Pleural Effusion',
      fractions: [
        [1, 1],
        [0.001, 3],
        [0.1, 3],
        [0.01, 3],
      ],
    },
    tb: {
      task: 'Tuberculosis',
      fractions: [
        [0.25, 2],
        [0.0625, 3],
        [1, 1],
      ],
    },
  };
  const cells: StudyCell[] = [];
  for (const [target, { task, fractions }] of Object.entries(grid)) {
    const labels = tests[target as keyof typeof tests].labels;
    for (const mode of ['finetune', 'linear'] as const) {
      for (const [fraction, draws] of fractions) {
        for (const init of ['baseline', 'moco'] as const) {
          const shift = init === 'moco' ? 2.5 : 0.6;
          cells.push({
            target,
            task,
            mode,
            init,
            fraction,
            draws: Array.from({ length: draws }, (_, draw) => ({
              draw,
              trainIds: Array.from({ length: Math.ceil(fraction * 400) }, (_, i) => `train-${draw}-${i}`),
              valAuc: 0.7 + 0.01 * draw,
              scores: labels.map((y) => shift * y + gaussian(random)),
              seconds: 1.5 + draw,
            })),
          });
        }
      }
    }
  }
  return {
    name: 'constructed <study>',
    createdAt: '2024-01-02T03:04:05.000Z',
    settings: { arch: 'resnet18', seed: 3, fractions: [0.001, 0.01, 0.1, 1] },
    tests,
    cells,
    timings: { pretrain: 3723, linear: 12.25, finetune: 99 },
  };
}

function findCell(results: StudyResults, target: string, mode: TrainingMode, init: Initialization, fraction: number) {
  return results.cells.find(
    (c) => c.target === target && c.mode === mode && c.init === init && c.fraction === fraction,
  );
}

/** A cell's per-draw scores collapsed to studies (max over images), as the paper scores CheXpert. */
function studyScores(results: StudyResults, cell: StudyCell): { scores: Float64Array[]; labels: Float64Array } {
  const test = results.tests[cell.target]!;
  const scores = cell.draws.map((d) => aggregateByStudy(test.studyIds, d.scores, test.labels).scores);
  return { scores, labels: aggregateByStudy(test.studyIds, test.labels, test.labels).labels };
}

const interval = (i: Interval): string => `${i.estimate.toFixed(3)} (${i.lower.toFixed(3)}, ${i.upper.toFixed(3)})`;

/** Table rows of report.md, keyed by "heading / mode title", each row its cells. */
function markdownTables(markdown: string): Map<string, string[][]> {
  const tables = new Map<string, string[][]>();
  let heading = '';
  let mode = '';
  for (const line of markdown.split('\n')) {
    if (line.startsWith('### ')) heading = line.slice(4);
    else if (/^\*\*[^*]+\*\*$/.test(line)) mode = line.slice(2, -2);
    else if (line.startsWith('## ')) heading = '';
    if (heading === '' || !line.startsWith('| ')) continue;
    const cells = line
      .slice(2, -2)
      .split(' | ')
      .map((c) => c.trim());
    if (cells[0] === 'Label fraction' || cells[0]?.startsWith('---')) continue;
    const key = `${heading} / ${mode}`;
    tables.set(key, [...(tables.get(key) ?? []), cells]);
  }
  return tables;
}

const workspace = tempDir('moco-cxr-report-');
after(() => workspace.cleanup());

describe('writeReport', () => {
  test('every number equals its recomputation from the predictions; figures and pages are written', async () => {
    const results = constructedStudy();
    const dir = join(workspace.path, 'full');
    const { files } = await writeReport(results, dir, { replicates: REPLICATES, seed: SEED });
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as StudyReport;
    const markdown = readFileSync(join(dir, 'report.md'), 'utf8');
    const tables = markdownTables(markdown);

    assert.deepEqual(report.bootstrap, { replicates: REPLICATES, seed: SEED, level: 0.95 });
    assert.deepEqual(
      report.targets.map((t) => [t.target, t.images, t.studies, t.positives, t.negatives]),
      [
        ['source', 120, 60, 30, 30],
        ['tb', 40, 40, 20, 20],
      ],
    );
    assert.equal(report.cells.length, results.cells.length);
    for (const summary of report.cells) {
      const cell = findCell(results, summary.target, summary.mode, summary.init, summary.fraction)!;
      const { scores, labels } = studyScores(results, cell);
      assert.deepEqual(summary.auc, bootstrapAuc(scores, labels, { replicates: REPLICATES, seed: SEED }));
      assert.deepEqual(
        summary.draws.map((d) => d.testAuc),
        scores.map((s) => auc(s, labels)),
      );
      assert.deepEqual(
        summary.draws.map((d) => [d.draw, d.trainSize, d.valAuc, d.seconds]),
        cell.draws.map((d) => [d.draw, d.trainIds.length, d.valAuc, d.seconds]),
      );
    }

    const titles = { source: 'Source: Pleural Effusion', tb: 'tb: Tuberculosis' } as const;
    const modeTitles = { linear: 'Linear probe', finetune: 'Fine-tuning (end to end)' } as const;
    assert.deepEqual(
      report.tables.map((t) => `${t.target}/${t.mode}`),
      ['source/linear', 'source/finetune', 'tb/linear', 'tb/finetune'],
    );
    for (const table of report.tables) {
      const expectedFractions = table.target === 'source' ? [0.001, 0.01, 0.1, 1] : [0.0625, 0.25, 1];
      assert.deepEqual(
        table.rows.map((r) => r.fraction),
        expectedFractions,
      );
      const rows = tables.get(`${titles[table.target as 'source']} / ${modeTitles[table.mode]}`);
      assert.ok(rows, `report.md has the ${table.target} ${table.mode} table`);
      assert.deepEqual(
        rows.map((r) => r[0]),
        table.target === 'source' ? ['0.1%', '1%', '10%', '100%'] : ['6.25%', '25%', '100%'],
      );
      for (const [i, row] of table.rows.entries()) {
        const moco = studyScores(results, findCell(results, table.target, table.mode, 'moco', row.fraction)!);
        const baseline = studyScores(results, findCell(results, table.target, table.mode, 'baseline', row.fraction)!);
        const options = { replicates: REPLICATES, seed: SEED };
        const mocoCi = bootstrapAuc(moco.scores, moco.labels, options);
        const baselineCi = bootstrapAuc(baseline.scores, baseline.labels, options);
        const difference = bootstrapAucDifference(moco.scores, baseline.scores, moco.labels, options);
        assert.deepEqual([row.moco, row.baseline, row.difference], [mocoCi, baselineCi, difference]);
        assert.deepEqual(rows[i]!.slice(1), [
          interval(mocoCi),
          interval(baselineCi),
          `+${interval(difference)}`,
          `${moco.scores.length} / ${baseline.scores.length}`,
        ]);
        // MoCo separates the classes far better: the whole interval lies above 0.
        assert.ok(difference.lower > 0, `${table.target} ${table.mode} ${row.fraction}: ${interval(difference)}`);
      }
    }
    assert.match(markdown, /MoCo − Baseline = \*\*\+0\.\d{3} \(0\.\d{3}, 0\.\d{3}\)\*\*/);
    assert.match(markdown, /"arch": "resnet18"/);
    assert.match(markdown, /\| pretrain \| 3723\.0 \| 1:02:03 \|/);
    assert.deepEqual(report.notes, []);

    const subsets = JSON.parse(readFileSync(join(dir, 'subsets.json'), 'utf8')) as Record<string, string[]>;
    assert.deepEqual(
      subsets['source/linear/moco/0.01/2'],
      findCell(results, 'source', 'linear', 'moco', 0.01)!.draws[2]!.trainIds,
    );
    const hashes = report.cells
      .filter((c) => c.target === 'source' && c.fraction === 0.01)
      .map((c) => c.draws[1]!.subset);
    assert.equal(new Set(hashes).size, 1, 'equal subsets have equal hashes');

    assert.deepEqual(report.figures, [
      'figures/auc-by-fraction.svg',
      'figures/auc-by-fraction.png',
      'figures/roc-source-linear.svg',
      'figures/roc-source-linear.png',
      'figures/roc-source-finetune.svg',
      'figures/roc-source-finetune.png',
      'figures/roc-tb-linear.svg',
      'figures/roc-tb-linear.png',
      'figures/roc-tb-finetune.svg',
      'figures/roc-tb-finetune.png',
    ]);
    for (const figure of report.figures) {
      const path = join(dir, figure);
      assert.ok(files.includes(path), `${figure} is listed`);
      if (figure.endsWith('.svg')) {
        const svg = readFileSync(path, 'utf8');
        assert.match(svg, /^<svg /);
        assert.match(svg, figure.includes('roc') ? />False positive rate</ : />Label fraction \(log scale\)</);
      } else {
        const meta = await sharp(path).metadata();
        assert.equal(meta.format, 'png');
        assert.ok((meta.width ?? 0) > 800 && (meta.height ?? 0) > 500, `${figure}: ${meta.width}×${meta.height}`);
      }
    }
    const auFigure = readFileSync(join(dir, 'figures/auc-by-fraction.svg'), 'utf8');
    for (const tick of ['0.1%', '1%', '10%', '100%', '6.25%', '25%']) assert.ok(auFigure.includes(`>${tick}<`), tick);
    assert.ok(markdown.includes('![') && markdown.includes('](figures/auc-by-fraction.png)'));

    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.equal(html.match(/src="data:image\/svg\+xml;base64,/g)?.length, 5);
    assert.doesNotMatch(html, /src="(?!data:)|<link |href="http/);
    assert.match(html, /<title>Study report: constructed &lt;study&gt;<\/title>/);
    const first = report.tables[0]!.rows[0]!;
    assert.ok(html.includes(`<td class="num">${interval(first.moco!)}</td>`));
  });

  test('missing cells and cells still running show as — without failing', async () => {
    const results = constructedStudy();
    results.cells = results.cells.filter(
      (c) => !(c.target === 'source' && c.mode === 'linear' && c.init === 'baseline' && c.fraction === 0.01),
    );
    findCell(results, 'source', 'finetune', 'moco', 0.1)!.draws = [];
    // The grid has not reached any tb fine-tuning yet.
    results.cells = results.cells.filter((c) => !(c.target === 'tb' && c.mode === 'finetune'));
    // Another subset for one baseline draw: the pairing is then noted.
    findCell(results, 'source', 'linear', 'baseline', 0.1)!.draws[1]!.trainIds = ['other'];
    const dir = join(workspace.path, 'partial');
    const { report } = await writeReport(results, dir, {
      replicates: REPLICATES,
      seed: SEED,
      // 'later' is a target the grid has not reached: it is listed all the same.
      // 'probed' runs only linear probes (its own `modes`): it gets no fine-tuning table.
      fractions: { source: { linear: [0.5] }, later: { linear: [0.1], finetune: [0.1] }, probed: { linear: [0.1] } },
    });
    const markdown = readFileSync(join(dir, 'report.md'), 'utf8');
    const tables = markdownTables(markdown);

    const linear = tables.get('Source: Pleural Effusion / Linear probe')!;
    assert.deepEqual(
      linear.map((r) => r[0]),
      ['0.1%', '1%', '10%', '50%', '100%'],
    );
    const onePercent = linear[1]!;
    assert.match(onePercent[1]!, /^0\.\d{3} \(0\.\d{3}, 0\.\d{3}\)$/);
    assert.deepEqual(onePercent.slice(2), ['—', '—', '3 / 0']);
    assert.deepEqual(linear[3], ['50%', '—', '—', '—', '0 / 0']);
    const finetune = tables.get('Source: Pleural Effusion / Fine-tuning (end to end)')!;
    const [fraction, moco, baseline, difference, draws] = finetune[2]!;
    assert.deepEqual([fraction, moco, difference, draws], ['10%', '—', '—', '0 / 3']);
    assert.match(baseline!, /^0\.\d{3} \(0\.\d{3}, 0\.\d{3}\)$/);
    const tbFinetune = tables.get('tb: Tuberculosis / Fine-tuning (end to end)')!;
    assert.deepEqual(tbFinetune, [
      ['6.25%', '—', '—', '—', '0 / 0'],
      ['25%', '—', '—', '—', '0 / 0'],
      ['100%', '—', '—', '—', '0 / 0'],
    ]);

    assert.deepEqual(tables.get('later / Linear probe'), [['10%', '—', '—', '—', '0 / 0']]);
    assert.deepEqual(tables.get('later / Fine-tuning (end to end)'), [['10%', '—', '—', '—', '0 / 0']]);
    assert.deepEqual(tables.get('probed / Linear probe'), [['10%', '—', '—', '—', '0 / 0']]);
    assert.equal(tables.get('probed / Fine-tuning (end to end)'), undefined);

    const row = report.tables[0]!.rows[1]!;
    assert.equal(row.baseline, null);
    assert.equal(row.difference, null);
    assert.notEqual(row.moco, null);
    assert.equal(findCellSummary(report, 'source', 'finetune', 'moco', 0.1).auc, null);
    assert.deepEqual(report.notes, [
      "Target 'later': none of its cells has finished yet.",
      "Target 'probed': none of its cells has finished yet.",
      'source, linear, 10%: draw 1 of MoCo and baseline were trained on different subsets, so their difference ' +
        'also carries the subsets’ variation.',
    ]);
    // The figures leave the missing points out; the tb fine-tuning panel and its ROC figure are absent.
    assert.ok(existsSync(join(dir, 'figures/auc-by-fraction.png')));
    assert.ok(!existsSync(join(dir, 'figures/roc-tb-finetune.svg')));
  });

  test('a test set with one class is named clearly and its cells are left unscored', async () => {
    const results = constructedStudy();
    results.tests.tb!.labels = results.tests.tb!.labels.map(() => 1);
    const dir = join(workspace.path, 'one-class');
    const { report } = await writeReport(results, dir, { replicates: REPLICATES, seed: SEED, figures: false });
    const message =
      "the test set of target 'tb' has only one class (40 positive, 0 negative studies), so its AUC is undefined; " +
      'the test split needs both classes';
    assert.equal(report.targets[1]!.problem, message);
    assert.deepEqual(report.notes, [`Target 'tb': ${message}.`]);
    for (const cell of report.cells) {
      if (cell.target === 'tb') {
        assert.equal(cell.auc, null);
        assert.equal(cell.problem, message);
      } else {
        assert.notEqual(cell.auc, null);
      }
    }
    const markdown = readFileSync(join(dir, 'report.md'), 'utf8');
    assert.ok(markdown.includes(`**Not scored:** ${message}.`));
    assert.deepEqual(markdownTables(markdown).get('tb: Tuberculosis / Linear probe')![0], [
      '6.25%',
      '—',
      '—',
      '—',
      '3 / 3',
    ]);
    assert.ok(!existsSync(join(dir, 'figures')));
  });

  test('scores that do not match the test set leave that cell unscored with its reason', () => {
    const results = constructedStudy();
    findCell(results, 'tb', 'linear', 'moco', 0.25)!.draws[1]!.scores.pop();
    findCell(results, 'tb', 'linear', 'baseline', 1)!.draws[0]!.scores[3] = Number.NaN;
    const report = summarizeStudy(results, { replicates: 20 });
    assert.deepEqual(report.notes, [
      'Cell tb/linear/moco/0.25 is not scored: cell tb/linear/moco/0.25: draw 1 has 39 scores for 40 test images.',
      'Cell tb/linear/baseline/1 is not scored: cell tb/linear/baseline/1: draw 0 has score NaN at 3.',
    ]);
    const tb = report.tables.find((t) => t.target === 'tb' && t.mode === 'linear')!;
    assert.deepEqual(
      tb.rows.map((r) => [r.moco !== null, r.baseline !== null, r.difference !== null]),
      [
        [true, true, true],
        [false, true, false],
        [true, false, false],
      ],
    );
  });

  test('a test set so small that resamples miss a class says its intervals are approximate', () => {
    const results: StudyResults = {
      name: 'tiny',
      createdAt: '2024-01-01T00:00:00.000Z',
      settings: {},
      tests: { source: { ids: ['a', 'b', 'c', 'd'], studyIds: ['a', 'b', 'c', 'd'], labels: [0, 1, 0, 1] } },
      cells: (['moco', 'baseline'] as const).map((init) => ({
        target: 'source',
        task: 'Effusion',
        mode: 'linear' as const,
        init,
        fraction: 1,
        draws: [{ draw: 0, trainIds: ['x'], valAuc: 0.5, scores: [0.1, 0.9, 0.3, 0.4], seconds: 1 }],
      })),
    };
    const report = summarizeStudy(results, { replicates: 100 });
    const redrawn = bootstrapAuc([[0.1, 0.9, 0.3, 0.4]], [0, 1, 0, 1], { replicates: 100 }).redrawn;
    assert.ok(redrawn > 0);
    assert.deepEqual(report.notes, [
      `Target 'source': ${redrawn} bootstrap resamples held a single class and were drawn again; ` +
        'its test set is small, so its intervals are approximate.',
    ]);
  });

  test('per-image scoring skips the study aggregation', () => {
    const results = constructedStudy();
    const report = summarizeStudy(results, { replicates: 50, seed: 1, aggregate: 'image' });
    const cell = findCell(results, 'source', 'linear', 'moco', 0.001)!;
    const labels = results.tests.source!.labels;
    assert.deepEqual(
      findCellSummary(report, 'source', 'linear', 'moco', 0.001).auc,
      bootstrapAuc(
        cell.draws.map((d) => d.scores),
        labels,
        { replicates: 50, seed: 1 },
      ),
    );
    assert.equal(report.targets[0]!.studies, 120);
  });
});

function findCellSummary(report: StudyReport, target: string, mode: TrainingMode, init: Initialization, f: number) {
  const cell = report.cells.find((c) => c.target === target && c.mode === mode && c.init === init && c.fraction === f);
  assert.ok(cell, `cell ${target}/${mode}/${init}/${f}`);
  return cell;
}

describe('formatting', () => {
  test('fractions as percentages without trailing zeros', () => {
    assert.deepEqual([0.001, 0.01, 0.0625, 0.1, 0.25, 1].map(formatFraction), [
      '0.1%',
      '1%',
      '6.25%',
      '10%',
      '25%',
      '100%',
    ]);
  });

  test('differences carry their sign', () => {
    const base = { redrawn: 0, replicates: 1 };
    assert.equal(formatDifference({ estimate: 0.0964, lower: 0.061, upper: 0.1304, ...base }), '+0.096 (0.061, 0.130)');
    assert.equal(formatDifference({ estimate: -0.02, lower: -0.05, upper: 0.01, ...base }), '-0.020 (-0.050, 0.010)');
    assert.equal(formatDifference(null), '—');
  });
});
