/** The models by name, for configuration files and the command line. */
import type { Backbone, ModelOptions } from './backbone.js';
import { densenet121 } from './densenet.js';
import { resnet18, resnet34, resnet50 } from './resnet.js';

const BUILDERS: Record<string, (options: ModelOptions) => Backbone> = {
  resnet18,
  resnet34,
  resnet50,
  densenet121,
};

/** Names `createModel` accepts. */
export function modelNames(): string[] {
  return Object.keys(BUILDERS);
}

/** Builds the named model ('resnet18', 'resnet34', 'resnet50', 'densenet121'). */
export function createModel(name: string, options: ModelOptions = {}): Backbone {
  const build = Object.hasOwn(BUILDERS, name) ? BUILDERS[name] : undefined;
  if (build === undefined) {
    throw new Error(`unknown model '${name}': available models are ${modelNames().join(', ')}`);
  }
  return build(options);
}
