/**
 * A small builder of ONNX graphs: nodes in the order they are added (which is
 * a topological order when each node's inputs were made before it), weights as
 * initializers with their float32 bytes, and names that never collide.
 */
import type { Tensor } from '../torch/index.js';
import {
  ATTRIBUTE_TYPE,
  DATA_TYPE,
  type AttributeMessage,
  type NodeMessage,
  type TensorMessage,
} from './onnx-proto.js';

/** An attribute value: a number (an int when `Number.isInteger`, else a float), a list of ints, or text. */
export type AttributeValue = number | readonly number[] | string | { float: number };

function attribute(name: string, value: AttributeValue): AttributeMessage {
  if (typeof value === 'string') return { name, type: ATTRIBUTE_TYPE.string, s: new TextEncoder().encode(value) };
  if (typeof value === 'object' && 'float' in value) return { name, type: ATTRIBUTE_TYPE.float, f: value.float };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`attribute '${name}': ${value} is no integer; write { float }`);
    return { name, type: ATTRIBUTE_TYPE.int, i: value };
  }
  return { name, type: ATTRIBUTE_TYPE.ints, ints: [...value] };
}

/** Nodes and initializers of one graph under construction. */
export class GraphBuilder {
  readonly nodes: NodeMessage[] = [];
  readonly initializers: TensorMessage[] = [];
  private readonly used = new Set<string>();

  /** `base`, or `base_2`, `base_3`... the first name not yet used in the graph. */
  uniqueName(base: string): string {
    let name = base;
    for (let n = 2; this.used.has(name); n++) name = `${base}_${n}`;
    this.used.add(name);
    return name;
  }

  /** Marks a name as taken (a graph input). */
  reserve(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX graph: the name '${name}' is already used`);
    this.used.add(name);
    return name;
  }

  /** Adds float32 values of shape `dims` as an initializer named (after) `name`; returns its name. */
  constant(name: string, values: Float32Array, dims: readonly number[]): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) {
      throw new RangeError(`ONNX initializer '${name}': ${values.length} values for shape [${dims.join(', ')}]`);
    }
    const unique = this.uniqueName(name);
    // raw_data is little-endian float32, which is what a Float32Array holds on every platform Node runs on.
    const rawData = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.initializers.push({ name: unique, dims: [...dims], dataType: DATA_TYPE.float, rawData });
    return unique;
  }

  /** Adds a tensor's values (float32, row-major) as an initializer. */
  weight(name: string, tensor: Tensor): string {
    if (tensor.dtype !== 'float32')
      throw new TypeError(`ONNX initializer '${name}': expected float32, got ${tensor.dtype}`);
    const cpu = tensor.device === 'cpu' ? tensor : tensor.to('cpu');
    try {
      return this.constant(name, cpu.data() as Float32Array, cpu.shape);
    } finally {
      if (cpu !== tensor) cpu.dispose();
    }
  }

  /** Adds a node with one output named after `name`; returns the output's name. */
  node(
    opType: string,
    inputs: readonly string[],
    name: string,
    attributes: Record<string, AttributeValue> = {},
  ): string {
    const output = this.uniqueName(name);
    this.nodes.push({
      input: [...inputs],
      output: [output],
      name: output,
      opType,
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    return output;
  }
}
