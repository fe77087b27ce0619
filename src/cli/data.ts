/**
 * `moco-cxr data KIND:PATH`: what a data set holds — images, patients,
 * studies, labels per task, views — and what checking its images finds: sizes,
 * bit depths, and the files the image cache would skip (each is decoded with
 * the cache's own decode, so the two cannot disagree).
 */
import { openSource, sourceKinds, summarizeSource, NO_SUCH_FILE, type SourceSummary } from '../data/sources/index.js';
import { flagName, helpLine, resolve, type Setting } from '../config/settings.js';
import type { Command } from './command.js';
import { sourceFlagHelp, sourceFlagOptions, sourceOptionsFromFlags } from './source-flags.js';
import { parseCommandLine } from './options.js';

/** Images checked unless --probe says otherwise: all of a set this size, a spread sample of a larger one. */
const DEFAULT_PROBE = 2000;

/** The command's own settings (the source options are `SOURCE_SETTINGS`). */
export const DATA_SETTINGS = [
  { key: 'json', type: 'boolean', default: false, help: 'print JSON for scripts' },
  {
    key: 'task',
    type: 'strings',
    optional: 'every task',
    help: 'report only these tasks (comma-separated, or the flag repeated)',
  },
  {
    key: 'probe',
    type: 'string',
    default: String(DEFAULT_PROBE),
    check: (value: string) =>
      value === 'all' || /^\d+$/.test(value) ? undefined : `must be an integer ≥ 0 or 'all', got '${value}'`,
    help: 'check N images spread over the set (all: every one; 0: none)',
  },
] as const satisfies readonly Setting[];

function usage(): string {
  return [
    'usage: moco-cxr data KIND:PATH [options]',
    '',
    'Describes a data set: images, patients, studies, label counts per task, views;',
    'decodes its images as the image cache will, and lists those that will not decode,',
    'with sizes, bit depths, channels and formats from their headers.',
    '',
    'kinds:',
    ...sourceKinds().map(({ kind, summary }) => `  ${kind.padEnd(9)} ${summary}`),
    '',
    'options:',
    ...DATA_SETTINGS.map((setting) => {
      const value = setting.type === 'boolean' ? '' : setting.key === 'probe' ? ' N|all' : ' NAME';
      return `  --${flagName(setting)}${value}`.padEnd(27) + helpLine(setting);
    }),
    '',
    'source options (lists comma-separated; a list flag may be repeated):',
    ...sourceFlagHelp(),
  ].join('\n');
}

function counts(map: Record<string, number>): string {
  const entries = Object.entries(map).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '-' : entries.map(([key, count]) => `${key} ${count}`).join(', ');
}

function table(rows: (string | number)[][]): string[] {
  const widths = (rows[0] ?? []).map((_, column) => Math.max(...rows.map((row) => String(row[column]).length)));
  return rows.map((row) =>
    row
      .map((cell, column) =>
        column === 0 ? String(cell).padEnd(widths[0] ?? 0) : String(cell).padStart(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd(),
  );
}

function describe(summary: SourceSummary, spec: string, policies: string): string {
  const lines = [
    `source       ${spec}`,
    `images       ${summary.images}`,
    `patients     ${summary.patients} (${summary.patientRule})`,
    `studies      ${summary.studies}`,
    `views        ${counts(summary.views)}`,
    `projections  ${counts(summary.projections)}`,
    `tasks        ${summary.tasks.length}${summary.defaultTask === undefined ? '' : ` (default: ${summary.defaultTask})`}`,
    '',
  ];
  const tasks = Object.keys(summary.labels);
  const inFile = tasks.some((task) => summary.labels[task]?.file !== undefined);
  if (inFile) {
    lines.push('labels as written in the file');
    lines.push(
      ...table([
        ['  task', 'positive', 'negative', 'uncertain', 'blank'],
        ...tasks.map((task) => {
          const file = summary.labels[task]?.file;
          return [
            `  ${task}`,
            file?.positive ?? '-',
            file?.negative ?? '-',
            file?.uncertain ?? '-',
            file?.blank ?? '-',
          ];
        }),
      ]),
      '',
    );
  }
  lines.push(inFile ? `labels for training (${policies})` : 'labels');
  lines.push(
    ...table([
      ['  task', 'positive', 'negative', 'masked'],
      ...tasks.map((task) => {
        const label = summary.labels[task];
        return [`  ${task}`, label?.positive ?? 0, label?.negative ?? 0, label?.masked ?? 0];
      }),
    ]),
    '',
  );
  const probe = summary.probe;
  if (probe === undefined) {
    lines.push('images checked none (--probe N checks N, --probe all every one)');
  } else {
    const capped =
      probe.probed < probe.of
        ? ` (spread over the set; ${probe.of - probe.probed} not checked, --probe all checks every one)`
        : '';
    lines.push(
      `images checked ${probe.probed} of ${probe.of}${capped}, decoded as the image cache will`,
      `sizes          ${counts(probe.sizes)}`,
      `bit depths     ${counts(probe.depths)}`,
      `channels       ${counts(probe.channels)}`,
      `formats        ${counts(probe.formats)}`,
      `unreadable     ${probe.unreadable.length}${probe.unreadable.length > 0 ? ' (the image cache will skip these)' : ''}`,
      ...probe.unreadable.slice(0, 10).map((entry) => `  ${entry.path}: ${entry.error}`),
      ...(probe.unreadable.length > 10 ? [`  ... and ${probe.unreadable.length - 10} more (--json lists all)`] : []),
    );
    if (
      probe.probed > 0 &&
      probe.unreadable.every((entry) => entry.error === NO_SUCH_FILE) &&
      probe.unreadable.length === probe.probed
    ) {
      lines.push(
        "  none of the images read is there: are they elsewhere? --image-root DIR says where a CSV's paths start",
      );
    }
  }
  if (summary.skipped.length > 0) {
    lines.push(
      `not taken      ${summary.skipped.length} files the source saw and left out`,
      ...summary.skipped.slice(0, 10).map((entry) => `  ${entry.path}: ${entry.reason}`),
      ...(summary.skipped.length > 10 ? [`  ... and ${summary.skipped.length - 10} more (--json lists all)`] : []),
    );
  }
  return lines.join('\n');
}

export const command: Command = {
  async run(argv) {
    const { values, positionals } = parseCommandLine(argv, {
      json: { type: 'boolean' },
      task: { type: 'string', multiple: true, value: 'a task name' },
      probe: { type: 'string', value: "an integer ≥ 0 or 'all'" },
      ...sourceFlagOptions(),
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help === true) {
      console.log(usage());
      return 0;
    }
    if (positionals.length !== 1) {
      console.error(`moco-cxr data: expected one KIND:PATH, got ${positionals.length}\n\n${usage()}`);
      return 2;
    }
    const spec = positionals[0] as string;
    const own = resolve(
      DATA_SETTINGS,
      { json: values.json, task: values.task?.join(','), probe: values.probe },
      '',
      '--',
    );
    const probe = own.probe === 'all' ? Infinity : Number(own.probe);
    const options = sourceOptionsFromFlags(values);
    const source = await openSource(spec, options);
    const summary = await summarizeSource(source, { probe });
    const tasks = own.task ?? [];
    for (const task of tasks) {
      if (!source.tasks.includes(task)) {
        throw new Error(`--task '${task}': no such task in ${spec}; tasks are: ${source.tasks.join(', ')}`);
      }
    }
    if (tasks.length > 0) {
      summary.labels = Object.fromEntries(Object.entries(summary.labels).filter(([task]) => tasks.includes(task)));
    }
    const uncertain = options.uncertain;
    const policies =
      `uncertain: ${
        uncertain === undefined
          ? 'ignore'
          : Object.entries(uncertain)
              .map(([t, p]) => (t === '*' ? p : `${t}=${p}`))
              .join(', ')
      }` + `, blank: ${options.blank ?? 'zeros'}`;
    if (own.json) {
      const policy = { uncertain: uncertain ?? 'ignore', blank: options.blank ?? 'zeros' };
      console.log(JSON.stringify({ source: spec, ...summary, policy }, null, 2));
    } else {
      console.log(describe(summary, spec, policies));
    }
    return 0;
  },
};
