/** Containers: `Sequential` runs its children in order. */
import { operator, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

const alias = operator('aten::alias');

/**
 * Runs its children one after the other. Children made with `new
 * Sequential(a, b, c)` are named '0', '1', '2' (as in PyTorch), and with
 * `Sequential.named([['conv0', a], ...])` by the given names. Intermediate
 * results are freed as soon as the next child has consumed them.
 */
export class Sequential extends Module {
  constructor(...modules: Module[]) {
    super();
    modules.forEach((module, i) => this.registerModule(String(i), module));
  }

  /** A Sequential whose children carry the given names, in order. */
  static named(entries: Iterable<[string, Module]>): Sequential {
    const out = new Sequential();
    for (const [name, module] of entries) out.registerModule(name, module);
    return out;
  }

  /** Appends a child named by its position. */
  append(module: Module): this {
    this.registerModule(String(this.length), module);
    return this;
  }

  /** Number of children. */
  get length(): number {
    return this.children().length;
  }

  /** The child at a position (negative counts from the end). */
  at(index: number): Module {
    const children = this.children();
    const found = children[index < 0 ? index + children.length : index];
    if (found === undefined) throw new RangeError(`Sequential has ${children.length} children, no index ${index}`);
    return found;
  }

  override forward(input: Tensor): Tensor {
    let current = input;
    for (const module of this.children()) {
      const next = module.forward(current);
      if (current !== input && next !== current) current.dispose();
      current = next;
    }
    // With no children the result must still be a tensor the caller owns.
    return current === input ? (alias([input]) as Tensor) : current;
  }
}
