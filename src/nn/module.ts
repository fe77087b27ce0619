/**
 * The Module base class: a tree of layers that owns named parameters (trainable
 * tensors) and buffers (state such as BatchNorm's running statistics), as
 * `torch.nn.Module` does. Names follow PyTorch's dotted convention, so a state
 * dict written here reads in PyTorch and the other way round.
 */
import { checkDevice, keep, noGrad, type Device, type MemoryFormat, type Tensor } from '../torch/index.js';
import { sameShape, shapeText } from '../torch/shape.js';

/** A shape mismatch found while loading a state dict. */
export interface ShapeMismatch {
  key: string;
  /** The shape the module holds. */
  expected: number[];
  /** The shape the state dict holds. */
  found: number[];
}

/** What `loadStateDict` did. */
export interface LoadStateDictReport {
  /** Module keys the state dict did not hold. */
  missing: string[];
  /** State dict keys the module does not hold. */
  unexpected: string[];
  /** Keys present on both sides with different shapes (skipped only when `skipMismatched`). */
  mismatched: ShapeMismatch[];
}

/** Options of `loadStateDict`. */
export interface LoadStateDictOptions {
  /** Throw when keys are missing or unexpected (as PyTorch's `strict=True`). Default true. */
  strict?: boolean;
  /** Skip and report keys whose shapes differ instead of throwing. Default false. */
  skipMismatched?: boolean;
}

/** Raised by `loadStateDict`; carries the full report. */
export class StateDictError extends Error {
  constructor(
    message: string,
    readonly report: LoadStateDictReport,
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

/** A flat state dict: dotted names to tensors, in the module's order. */
export type StateDict = Record<string, Tensor>;

function listText(keys: string[], limit = 5): string {
  const shown = keys
    .slice(0, limit)
    .map((k) => `'${k}'`)
    .join(', ');
  return keys.length > limit ? `${shown} and ${keys.length - limit} more` : shown;
}

const VALID_NAME = /^[^.]+$/;

function checkName(kind: string, name: string): void {
  if (!VALID_NAME.test(name)) throw new TypeError(`${kind} name must be non-empty and hold no '.', got '${name}'`);
}

/**
 * Base class of every layer and model. Subclasses register their state in the
 * constructor with `registerParameter`, `registerBuffer` and `registerModule`
 * (in the order PyTorch's module declares it, since that order is the order of
 * `stateDict()`), and implement `forward`.
 *
 * Ownership: a module owns its parameters and buffers (they survive enclosing
 * `tidy` scopes) until `dispose()`. `forward` returns a tensor the caller owns
 * and never the input tensor object itself.
 */
export class Module {
  /** Whether the module is in training mode (see `train` / `eval`). */
  training = true;

  private readonly parametersByName = new Map<string, Tensor | null>();
  private readonly buffersByName = new Map<string, Tensor | null>();
  private readonly nonPersistent = new Set<string>();
  private readonly modulesByName = new Map<string, Module>();

  /** Runs the module. Subclasses override it. */
  forward(input: Tensor): Tensor {
    void input;
    throw new Error(`${this.constructor.name}.forward is not implemented`);
  }

  // ---- registration ---------------------------------------------------------

  /**
   * Adds (or replaces) a parameter. The tensor becomes a leaf that requires
   * grad, owned by this module. Returns the tensor, for field initializers.
   */
  registerParameter<T extends Tensor | null>(name: string, tensor: T): T {
    checkName('parameter', name);
    if (this.buffersByName.has(name) || this.modulesByName.has(name)) {
      throw new TypeError(`'${name}' is already a buffer or a child module of ${this.constructor.name}`);
    }
    if (tensor !== null) {
      keep(tensor);
      if (!tensor.requiresGrad) tensor.requiresGrad_(true);
    }
    this.parametersByName.set(name, tensor);
    return tensor;
  }

  /**
   * Adds (or replaces) a buffer: state saved in the state dict (unless
   * `persistent` is false) but not trained. Returns the tensor.
   */
  registerBuffer<T extends Tensor | null>(name: string, tensor: T, persistent = true): T {
    checkName('buffer', name);
    if (this.parametersByName.has(name) || this.modulesByName.has(name)) {
      throw new TypeError(`'${name}' is already a parameter or a child module of ${this.constructor.name}`);
    }
    if (tensor !== null) keep(tensor);
    this.buffersByName.set(name, tensor);
    if (persistent) this.nonPersistent.delete(name);
    else this.nonPersistent.add(name);
    return tensor;
  }

  /**
   * Adds a child module, or replaces the child of that name in place (keeping
   * its position in the state dict, as assigning an attribute does in PyTorch).
   * A replaced child is not disposed. Returns the module.
   */
  registerModule<M extends Module>(name: string, module: M): M {
    checkName('module', name);
    if (this.parametersByName.has(name) || this.buffersByName.has(name)) {
      throw new TypeError(`'${name}' is already a parameter or a buffer of ${this.constructor.name}`);
    }
    this.modulesByName.set(name, module);
    return module;
  }

  /** The child module of that name. */
  child(name: string): Module {
    const found = this.modulesByName.get(name);
    if (found === undefined) {
      const names = [...this.modulesByName.keys()].join(', ');
      throw new Error(`${this.constructor.name} has no child module '${name}' (children: ${names || 'none'})`);
    }
    return found;
  }

  /** The module at a dotted path such as `layer1.0.conv1` ('' is this module). */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    return path.split('.').reduce<Module>((current, part) => {
      const next = current.modulesByName.get(part);
      if (next === undefined) throw new Error(`no submodule '${path}': '${part}' not found`);
      return next;
    }, this);
  }

  /** The parameter of that (local) name, which must be set. */
  protected param(name: string): Tensor {
    const found = this.parametersByName.get(name);
    if (found === undefined || found === null) throw new Error(`${this.constructor.name} has no parameter '${name}'`);
    return found;
  }

  /** The parameter of that (local) name, or null when it is registered as absent. */
  protected optionalParam(name: string): Tensor | null {
    const found = this.parametersByName.get(name);
    if (found === undefined) throw new Error(`${this.constructor.name} has no parameter '${name}'`);
    return found;
  }

  /** The buffer of that (local) name, or null when it is registered as absent. */
  protected optionalBuffer(name: string): Tensor | null {
    const found = this.buffersByName.get(name);
    if (found === undefined) throw new Error(`${this.constructor.name} has no buffer '${name}'`);
    return found;
  }

  /** The parameter or buffer at a dotted path such as `layer1.0.bn1.running_mean`. */
  getTensor(path: string): Tensor {
    const cut = path.lastIndexOf('.');
    const owner = cut < 0 ? this : this.getSubmodule(path.slice(0, cut));
    const local = path.slice(cut + 1);
    const found = owner.parametersByName.get(local) ?? owner.buffersByName.get(local);
    if (found === undefined || found === null) throw new Error(`no parameter or buffer '${path}'`);
    return found;
  }

  // ---- traversal ------------------------------------------------------------

  /** Direct children with their names, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.modulesByName.entries()];
  }

  children(): Module[] {
    return [...this.modulesByName.values()];
  }

  /** This module and every descendant, depth first, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (module: Module, name: string): void => {
      if (seen.has(module)) return;
      seen.add(module);
      out.push([name, module]);
      for (const [childName, child] of module.modulesByName) {
        visit(child, name === '' ? childName : `${name}.${childName}`);
      }
    };
    visit(this, prefix);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, module]) => module);
  }

  /** Parameters with dotted names, in state dict order; a tensor shared by two modules appears once. */
  namedParameters(recurse = true): [string, Tensor][] {
    return this.namedMembers((module) => module.parametersByName, recurse, false);
  }

  parameters(recurse = true): Tensor[] {
    return this.namedParameters(recurse).map(([, tensor]) => tensor);
  }

  /** Buffers with dotted names, in state dict order (non-persistent ones included). */
  namedBuffers(recurse = true): [string, Tensor][] {
    return this.namedMembers((module) => module.buffersByName, recurse, false);
  }

  buffers(recurse = true): Tensor[] {
    return this.namedBuffers(recurse).map(([, tensor]) => tensor);
  }

  /** Total number of elements over all parameters. */
  numParameters(): number {
    return this.parameters().reduce((total, p) => total + p.numel(), 0);
  }

  private namedMembers(
    pick: (module: Module) => Map<string, Tensor | null>,
    recurse: boolean,
    persistentOnly: boolean,
  ): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const modules: [string, Module][] = recurse ? this.namedModules() : [['', this]];
    for (const [prefix, module] of modules) {
      for (const [name, tensor] of pick(module)) {
        if (tensor === null || seen.has(tensor)) continue;
        if (persistentOnly && module.nonPersistent.has(name)) continue;
        seen.add(tensor);
        out.push([prefix === '' ? name : `${prefix}.${name}`, tensor]);
      }
    }
    return out;
  }

  /** Calls `fn` on every module, children first, then this one (as PyTorch's `apply`). */
  apply(fn: (module: Module) => void): this {
    for (const child of this.modulesByName.values()) child.apply(fn);
    fn(this);
    return this;
  }

  // ---- modes ----------------------------------------------------------------

  /** Sets training mode (true) or evaluation mode (false) on this module and all descendants. */
  train(mode = true): this {
    for (const module of this.modules()) module.training = mode;
    return this;
  }

  /** Evaluation mode: BatchNorm uses running statistics, Dropout passes through. */
  eval(): this {
    return this.train(false);
  }

  /** Sets `requiresGrad` on every parameter; `requiresGrad_(false)` freezes the subtree. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad_(flag);
    return this;
  }

  /** Same as `requiresGrad_`. */
  requiresGrad(flag = true): this {
    return this.requiresGrad_(flag);
  }

  /** Drops every parameter's gradient (sets it to null, as PyTorch's `set_to_none=True`). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /**
   * Moves every parameter and buffer to `device`, in place: the tensor objects
   * stay the same (so references held by optimizers remain valid).
   */
  /**
   * Lays every 4-d parameter and buffer out as `format` (keeping the same
   * tensor objects, as `to` does). With 'channelsLast' weights and inputs,
   * oneDNN's convolutions skip their layout conversions; call it before making
   * the optimizer, and give the model channels-last inputs too.
   */
  toMemoryFormat(format: MemoryFormat): this {
    noGrad(() => {
      for (const module of this.modules()) {
        for (const [, tensor] of module.parametersByName) relayout(tensor, format, true);
        for (const [, tensor] of module.buffersByName) relayout(tensor, format, false);
      }
    });
    return this;
  }

  to(device: Device): this {
    const target = checkDevice(device);
    noGrad(() => {
      for (const module of this.modules()) {
        for (const [, tensor] of module.parametersByName) moveTo(tensor, target, true);
        for (const [, tensor] of module.buffersByName) moveTo(tensor, target, false);
      }
    });
    return this;
  }

  // ---- state dicts ----------------------------------------------------------

  /**
   * Parameters and persistent buffers by dotted name, in PyTorch's order (each
   * module's parameters, then its buffers, then its children). The values are
   * new tensor objects sharing storage with the module and cut from autograd
   * (the caller disposes them, e.g. `torch.dispose(dict)`); with `keepVars` they
   * are the module's own tensors, which the caller must not dispose.
   */
  stateDict(options: { keepVars?: boolean } = {}): StateDict {
    const out: StateDict = {};
    for (const [prefix, module] of this.namedModules()) {
      const add = (name: string, tensor: Tensor | null): void => {
        if (tensor === null) return;
        const key = prefix === '' ? name : `${prefix}.${name}`;
        out[key] = options.keepVars === true ? tensor : tensor.detach();
      };
      for (const [name, tensor] of module.parametersByName) add(name, tensor);
      for (const [name, tensor] of module.buffersByName) if (!module.nonPersistent.has(name)) add(name, tensor);
    }
    return out;
  }

  /** The module's state dict keys with their shapes, in order. */
  stateDictShapes(): [string, number[]][] {
    const dict = this.stateDict({ keepVars: true });
    return Object.entries(dict).map(([key, tensor]) => [key, tensor.shape]);
  }

  /**
   * Copies values from `dict` into the module's parameters and buffers, in
   * place and without recording gradients. Shapes must match (a mismatch
   * throws a `StateDictError` naming the key, unless `skipMismatched`); with
   * `strict` (the default) missing and unexpected keys throw too. Nothing is
   * copied when it throws.
   */
  loadStateDict(dict: Readonly<Record<string, Tensor>>, options: LoadStateDictOptions = {}): LoadStateDictReport {
    const strict = options.strict ?? true;
    const report: LoadStateDictReport = { missing: [], unexpected: [], mismatched: [] };
    const copies: [Tensor, Tensor][] = [];
    const defaults: [Tensor, number][] = [];
    const known = new Set<string>();
    for (const [prefix, module] of this.namedModules()) {
      const visit = (name: string, target: Tensor | null): void => {
        if (target === null) return;
        const key = prefix === '' ? name : `${prefix}.${name}`;
        known.add(key);
        const source = dict[key];
        if (source === undefined) {
          const fallback = module.defaultOnLoad(name);
          if (fallback === undefined) report.missing.push(key);
          else defaults.push([target, fallback]);
        } else if (!sameShape(target.shape, source.shape)) {
          report.mismatched.push({ key, expected: target.shape, found: source.shape });
        } else {
          copies.push([target, source]);
        }
      };
      for (const [name, tensor] of module.parametersByName) visit(name, tensor);
      for (const [name, tensor] of module.buffersByName) if (!module.nonPersistent.has(name)) visit(name, tensor);
    }
    for (const key of Object.keys(dict)) if (!known.has(key)) report.unexpected.push(key);

    const first = report.mismatched[0];
    if (first !== undefined && options.skipMismatched !== true) {
      const more = report.mismatched.length > 1 ? ` (${report.mismatched.length - 1} more keys differ in shape)` : '';
      throw new StateDictError(
        `size mismatch for '${first.key}': the model has shape ${shapeText(first.expected)} ` +
          `but the state dict holds ${shapeText(first.found)}${more}`,
        report,
      );
    }
    if (strict && (report.missing.length > 0 || report.unexpected.length > 0)) {
      const parts: string[] = [];
      if (report.missing.length > 0) parts.push(`missing keys ${listText(report.missing)}`);
      if (report.unexpected.length > 0) parts.push(`unexpected keys ${listText(report.unexpected)}`);
      throw new StateDictError(
        `state dict does not fit ${this.constructor.name}: ${parts.join('; ')} (pass { strict: false } to load the rest)`,
        report,
      );
    }
    noGrad(() => {
      for (const [target, source] of copies) target.copy_(source);
      for (const [target, value] of defaults) target.fill_(value);
    });
    return report;
  }

  /**
   * The value one of this module's own parameters or buffers takes when a state
   * dict lacks it, or undefined when it then counts as missing. Layers override it.
   */
  protected defaultOnLoad(name: string): number | undefined {
    void name;
    return undefined;
  }

  // ---- lifetime -------------------------------------------------------------

  /** Frees every parameter and buffer of this module and its descendants. */
  dispose(): void {
    for (const module of this.modules()) {
      for (const [, tensor] of module.parametersByName) tensor?.dispose();
      for (const [, tensor] of module.buffersByName) tensor?.dispose();
    }
  }

  /** A short description: the class name and the layer's settings. */
  extraRepr(): string {
    return '';
  }

  /** The module tree, one line per module, as PyTorch prints it. */
  toString(): string {
    const lines = (module: Module, name: string, indent: string): string[] => {
      const head = `${indent}${name === '' ? '' : `(${name}): `}${module.constructor.name}(${module.extraRepr()}`;
      if (module.modulesByName.size === 0) return [`${head})`];
      const inner = [...module.modulesByName].flatMap(([childName, child]) => lines(child, childName, `${indent}  `));
      return [head, ...inner, `${indent})`];
    };
    return lines(this, '', '').join('\n');
  }
}

function relayout(tensor: Tensor | null, format: MemoryFormat, trainable: boolean): void {
  if (tensor === null || tensor.ndim !== 4) return;
  const requiresGrad = tensor.requiresGrad;
  tensor.assign(tensor.contiguous(format));
  if (trainable && requiresGrad) tensor.requiresGrad_(true);
}

function moveTo(tensor: Tensor | null, device: string, trainable: boolean): void {
  if (tensor === null || tensor.device === device) return;
  const requiresGrad = tensor.requiresGrad;
  const moved = tensor.to(device as Device);
  tensor.assign(moved);
  if (trainable && requiresGrad) tensor.requiresGrad_(true);
}
