/**
 * `moco-cxr export` as a library call: reads the model file, writes the ONNX
 * file and, with `web`, the page that runs it in the browser.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { MAX_IMAGE_SIZE } from '../data/limits.js';
import { withFilePreprocessing } from '../data/preprocessing.js';
import { readModelFile } from './model-file.js';
import { exportOnnx } from './onnx.js';
import { resolveExportConfig } from './settings.js';
import { linearHead, writeWebPage } from './web.js';

/** What {@link exportModel} wrote. */
export interface ExportResult {
  /** The `.onnx` file. */
  onnx: string;
  bytes: number;
  nodes: number;
  arch: string;
  tasks: string[];
  /** The page's folder and files, with `web`. */
  web?: { dir: string; files: string[] };
}

/**
 * Runs an export from its settings (see `EXPORT_SETTINGS`); errors name the
 * setting or the file. Unset `normalize` and `imageSize` are the model file's
 * recorded preprocessing (moco-cxr's classifier files record it); a set one
 * that differs is kept, with a warning through `warn`.
 */
export function exportModel(
  partial: Readonly<Record<string, unknown>>,
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): ExportResult {
  const file = typeof partial.model === 'string' ? partial.model : undefined;
  const config = resolveExportConfig(withFilePreprocessing({ ...partial }, file, warn));
  const {
    model,
    arch,
    classes,
    tasks: recorded,
  } = readModelFile(config.model, config.arch === undefined ? {} : { arch: config.arch });
  try {
    const tasks =
      config.tasks === undefined
        ? (recorded ?? Array.from({ length: classes }, (_, i) => `class ${i}`))
        : config.tasks.split(',').map((task) => task.trim());
    if (tasks.length !== classes || tasks.some((task) => task === '')) {
      throw new RangeError(
        `tasks: ${tasks.length} names ('${tasks.join("', '")}') for a classifier with ${classes} outputs in ${config.model}`,
      );
    }
    const exported = exportOnnx(model, {
      tasks,
      normalize: config.normalize,
      imageSize: config.imageSize,
      withFeatures: config.withFeatures,
    });
    const onnx = config.web === undefined ? config.out : join(config.web, basename(config.out));
    if (config.web === undefined) {
      mkdirSync(dirname(onnx), { recursive: true });
      writeFileSync(onnx, exported.bytes);
      return { onnx, bytes: exported.bytes.length, nodes: exported.nodes, arch, tasks };
    }
    const files = writeWebPage(config.web, exported.bytes, {
      arch,
      model: basename(config.out),
      tasks,
      imageSize: config.imageSize,
      features: config.withFeatures,
      head: linearHead(model),
      maxImageSide: 4 * MAX_IMAGE_SIZE,
    });
    return { onnx, bytes: exported.bytes.length, nodes: exported.nodes, arch, tasks, web: { dir: config.web, files } };
  } finally {
    model.dispose();
  }
}
