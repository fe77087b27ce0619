/**
 * The static page that runs an exported model in the browser: the page's own
 * files (`src/export/web/`), onnxruntime-web's module and wasm files, the
 * `.onnx` file and `model.json`, which tells the page the tasks, the input
 * side and, for a linear head, the weights it needs to draw class activation
 * maps from the `features` output.
 */
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Backbone } from '../models/backbone.js';
import { Linear } from '../nn/linear.js';

/** The page's own files: two folders above this module in `src/` and in `dist/` alike. */
export const PAGE_SOURCE = fileURLToPath(new URL('../../src/export/web/', import.meta.url));

/** onnxruntime-web's files the page loads: the wasm build's module, its worker module and the wasm binary. */
export const ORT_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'] as const;

/** What the page reads from `model.json`. */
export interface PageConfig {
  arch: string;
  /** The `.onnx` file, relative to the page. */
  model: string;
  tasks: string[];
  /** The side the page resizes and crops images to. */
  imageSize: number;
  /** Whether the model has the `features` output. */
  features: boolean;
  /** The linear head `[tasks][features]` and its bias, for class activation maps; null for another head. */
  head: { weight: number[][]; bias: number[] } | null;
  /** The largest image side the page accepts before decoding it. */
  maxImageSide: number;
}

/** The linear head's weights as plain arrays, or null when the classifier is no single Linear. */
export function linearHead(model: Backbone): PageConfig['head'] {
  const classifier = model.classifier;
  if (!(classifier instanceof Linear)) return null;
  const [rows, cols] = classifier.weight.shape as [number, number];
  const values = classifier.weight.data() as Float32Array;
  const weight = Array.from({ length: rows }, (_, r) => Array.from(values.subarray(r * cols, (r + 1) * cols)));
  const bias =
    classifier.bias === null ? new Array<number>(rows).fill(0) : Array.from(classifier.bias.data() as Float32Array);
  return { weight, bias };
}

function onnxruntimeWebDist(): string {
  // The package's entry for Node lies in its dist/ folder, beside the browser files.
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

/**
 * Writes the page into `dir`: index.html and its script and style, `ort/` with
 * onnxruntime-web's files, the model bytes as `config.model` and `model.json`.
 * Returns the files written, relative to `dir`.
 */
export function writeWebPage(dir: string, onnx: Uint8Array, config: PageConfig): string[] {
  mkdirSync(join(dir, 'ort'), { recursive: true });
  const written: string[] = [];
  for (const name of readdirSync(PAGE_SOURCE)) {
    copyFileSync(join(PAGE_SOURCE, name), join(dir, name));
    written.push(name);
  }
  const ortDist = onnxruntimeWebDist();
  for (const name of ORT_FILES) {
    copyFileSync(join(ortDist, name), join(dir, 'ort', name));
    written.push(`ort/${name}`);
  }
  writeFileSync(join(dir, config.model), onnx);
  writeFileSync(join(dir, 'model.json'), `${JSON.stringify(config)}\n`);
  written.push(config.model, 'model.json');
  return written;
}
