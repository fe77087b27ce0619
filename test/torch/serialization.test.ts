/**
 * torch.save / torch.load against PyTorch itself: files Python writes load here
 * with identical values, and files written here load in Python identically.
 * Python describes values as JSON with markers for what JSON cannot say
 * (float vs int, tuple vs list, dict key types, tensors), and `matchesPython`
 * checks a JavaScript value against such a description.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { materialize, unpickle } from '../../src/torch/pickle/unpickler.js';
import * as torch from '../../src/torch/index.js';
import { oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const skip = oracleMissing();
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

// Python side: `describe(v)` turns a value into JSON with markers; tensors carry
// their values (int64 as strings, exact), or only a SHA-256 of their bytes under
// `digest=True` for large files.
const PY_DESCRIBE = `
def describe(v, digest=False):
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu()
        out = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape), 'requiresGrad': v.requires_grad}
        if digest:
            out['sha256'] = hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
        elif t.dtype == torch.int64:
            out['values'] = [str(x) for x in t.flatten().tolist()]
        else:
            out['values'] = t.double().flatten().tolist()
        return {'__tensor__': out}
    if isinstance(v, dict):
        return {'__dict__': [[k, describe(w, digest)] for k, w in v.items()]}
    if isinstance(v, tuple): return {'__tuple__': [describe(w, digest) for w in v]}
    if isinstance(v, list): return [describe(w, digest) for w in v]
    if isinstance(v, (set, frozenset)): return {'__set__': sorted(describe(w, digest) for w in v)}
    if isinstance(v, bytes): return {'__bytes__': list(v)}
    if isinstance(v, bool) or v is None or isinstance(v, str): return v
    if isinstance(v, float): return {'__float__': v}
    if isinstance(v, int): return v if abs(v) <= 2**53 - 1 else {'__bigint__': str(v)}
    if hasattr(v, 'item'): return describe(v.item(), digest)
    raise TypeError(type(v))
`;

/** Runs Python with torch imported and \`describe\` defined, in \`workdir\`. */
function python<T = unknown>(script: string, workdir: string): T {
  return runPython<T>(`import torch, torchvision, collections, hashlib\n${PY_DESCRIBE}\n${script}`, null, workdir);
}

type Description =
  | null
  | boolean
  | number
  | string
  | Description[]
  | { __float__: number }
  | { __bigint__: string }
  | { __tuple__: Description[] }
  | { __set__: Description[] }
  | { __bytes__: number[] }
  | { __dict__: [string | number, Description][] }
  | { __tensor__: TensorDescription };

interface TensorDescription {
  dtype: torch.DType;
  shape: number[];
  requiresGrad: boolean;
  values?: (number | string)[];
  sha256?: string;
}

/** SHA-256 of a tensor's elements in row-major order, as Python's `describe(..., digest=True)` computes it. */
function sha256(t: torch.Tensor): string {
  return createHash('sha256').update(new Uint8Array(t._bytes())).digest('hex');
}

function isMarker<K extends string>(d: Description, key: K): d is Extract<Description, Record<K, unknown>> {
  return typeof d === 'object' && d !== null && !Array.isArray(d) && key in d;
}

/**
 * Checks `actual` against Python's description. `saving` is for values about to
 * be saved (PyFloat, PyTuple, Maps), where an integral number must be an int and
 * an array a list; loaded values can only be numbers and arrays.
 */
function matchesPython(actual: unknown, expected: Description, path: string, saving = false): void {
  const where = `at '${path}'`;
  if (expected === null) return assert.ok(actual === null || actual === undefined, `${where}: expected None`);
  if (typeof expected === 'boolean' || typeof expected === 'string') return assert.equal(actual, expected, where);
  if (typeof expected === 'number') {
    // A bigint within the safe range saves as the same int.
    const value = saving && typeof actual === 'bigint' ? Number(actual) : actual;
    assert.equal(typeof value, 'number', `${where}: expected the int ${expected}`);
    return assert.equal(value, expected, where);
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected a list`);
    assert.equal(actual.length, expected.length, `${where}: length`);
    expected.forEach((item, i) => matchesPython((actual as unknown[])[i], item, `${path}[${i}]`, saving));
    return;
  }
  if (isMarker(expected, '__float__')) {
    const value = actual instanceof torch.PyFloat ? actual.value : actual;
    assert.equal(typeof value, 'number', `${where}: expected a float`);
    if (saving && !(actual instanceof torch.PyFloat)) {
      assert.ok(!Number.isInteger(value), `${where}: an integral number saves as int`);
    }
    return assert.equal(value, expected.__float__, where);
  }
  if (isMarker(expected, '__bigint__')) return assert.equal(actual, BigInt(expected.__bigint__), where);
  if (isMarker(expected, '__bytes__')) {
    assert.ok(actual instanceof Uint8Array, `${where}: expected bytes`);
    return assert.deepEqual([...actual], expected.__bytes__, where);
  }
  if (isMarker(expected, '__set__')) {
    assert.ok(Array.isArray(actual), `${where}: expected a set as an array`);
    return assert.deepEqual([...(actual as unknown[])].sort(), expected.__set__, where);
  }
  if (isMarker(expected, '__tuple__')) {
    const items = actual instanceof torch.PyTuple ? actual.items : actual;
    if (saving) assert.ok(actual instanceof torch.PyTuple, `${where}: expected a tuple`);
    return matchesPython(items, expected.__tuple__, path, saving);
  }
  if (isMarker(expected, '__dict__')) return matchesDict(actual, expected.__dict__, path, saving);
  if (isMarker(expected, '__tensor__')) return matchesTensor(actual, expected.__tensor__, where);
  assert.fail(`${where}: unexpected description ${JSON.stringify(expected)}`);
}

function matchesDict(actual: unknown, entries: [string | number, Description][], path: string, saving: boolean): void {
  const where = `at '${path}'`;
  const child = (key: string | number): string => (path === '' ? String(key) : `${path}.${key}`);
  const stringKeys = entries.every(([key]) => typeof key === 'string');
  if (stringKeys && !(actual instanceof Map)) {
    assert.ok(typeof actual === 'object' && actual !== null, `${where}: expected a dict`);
    // JavaScript orders integer-like keys first; an object built from the keys shows the order to expect.
    const order = Object.keys(Object.fromEntries(entries.map(([key]) => [key, true])));
    assert.deepEqual(Object.keys(actual), order, `${where}: keys`);
    for (const [key, value] of entries)
      matchesPython((actual as Record<string, unknown>)[key], value, child(key), saving);
    return;
  }
  assert.ok(actual instanceof Map, `${where}: a dict with non-string keys loads as a Map`);
  assert.deepEqual(
    [...actual.keys()],
    entries.map(([key]) => key),
    `${where}: keys`,
  );
  for (const [key, value] of entries) matchesPython(actual.get(key), value, child(key), saving);
}

function matchesTensor(actual: unknown, expected: TensorDescription, where: string): void {
  assert.ok(torch.isTensor(actual), `${where}: expected a tensor`);
  assert.equal(actual.dtype, expected.dtype, `${where}: dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${where}: shape`);
  assert.equal(actual.device, 'cpu', `${where}: device`);
  assert.equal(actual.requiresGrad, expected.requiresGrad, `${where}: requiresGrad`);
  if (expected.sha256 !== undefined) return assert.equal(sha256(actual), expected.sha256, `${where}: values`);
  const values = actual.data();
  if (values instanceof BigInt64Array) {
    return assert.deepEqual(
      [...values],
      (expected.values ?? []).map((v) => BigInt(v)),
      `${where}: values`,
    );
  }
  assert.deepEqual([...values], expected.values, `${where}: values`);
}

/** Python code building `value`: every dtype, views, 0-d and empty tensors, nested Python values. */
const PY_MIXED = `
g = torch.Generator().manual_seed(0)
base = torch.randn(4, 5, generator=g) * 10
value = {
    'float32': base, 'float64': base.double() / 3, 'float16': base.half(), 'bfloat16': base.bfloat16(),
    'int64': torch.tensor([-2**62, -1, 0, 2**40, 2**62]), 'int32': base.int(), 'int16': base.short() * 100,
    'uint8': base.abs().byte(), 'int8': base.char(), 'bool': base > 0,
    'transposed': base.t(), 'slice': base[1:3, 2:], 'every_other': base[:, ::2], 'row': base[3],
    'scalar': torch.tensor(3.25), 'int_scalar': torch.tensor(-7), 'empty': torch.zeros(0, 3),
    'empty_long': torch.zeros(2, 0, dtype=torch.int64), 'needs_grad': torch.ones(2, requires_grad=True),
    'nested': {
        'ints': [1, -2, 300, 70000, -2**31, 2**31, -2**40, 2**53 - 1, 2**63, -2**63 - 1, 2**64],
        'floats': [0.5, 1.0, -3.75, 1e-300, 2.0**70],
        'strings': ['a', 'ü€😀', '', 'line\\nbreak'],
        'tuple': (1, 'x', None, (2.5,)), 'flags': [True, False], 'none': None,
        'deep': {'a': {'b': [torch.ones(2, dtype=torch.float64), {'c': ()}]}},
        'bytes': b'\\x00\\xffab', 'set': {3, 1, 2},
    },
    'int_keys': {0: 'zero', 5: 'five', -1: 'minus'},
    'ordered': collections.OrderedDict([('z', 1), ('a', 2), ('m', 3)]),
    'milestones': collections.Counter([12, 18, 18]),
    'numpy': [__import__('numpy').float64(0.875), __import__('numpy').int64(-3), __import__('numpy').float32(0.5)],
}
`;

/** MoCo-CXR's checkpoint layout: DataParallel-wrapped MoCo with two ResNet18 encoders, and Adam's state. */
const PY_MOCO = `
import torchvision
from torch import nn
torch.manual_seed(0)
class MoCo(nn.Module):
    def __init__(self, dim=128, K=2048):
        super().__init__()
        self.encoder_q = torchvision.models.resnet18(num_classes=dim)
        self.encoder_k = torchvision.models.resnet18(num_classes=dim)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.register_buffer('queue', nn.functional.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))
model = nn.DataParallel(MoCo())
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
model.module.encoder_q(torch.randn(2, 3, 32, 32)).pow(2).mean().backward()
optimizer.step()
checkpoint = {'epoch': 20, 'arch': 'resnet18', 'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict()}
torch.save(checkpoint, os.path.join(WORKDIR, 'checkpoint_0019.pth.tar'))
`;

/** Files Python writes for the tests below, made in one Python run (its start-up dominates). */
const PY_FILES = `
import argparse, zipfile
${PY_MIXED}
torch.save(value, os.path.join(WORKDIR, 'mixed.pt'))
torch.save(value, os.path.join(WORKDIR, 'legacy.pt'), _use_new_zipfile_serialization=False)
for p in (1, 3, 4, 5):
    torch.save(value, os.path.join(WORKDIR, f'protocol{p}.pt'), pickle_protocol=p)
mixed = describe(value)
torch.manual_seed(1)
resnet18 = torchvision.models.resnet18().state_dict()
torch.save(resnet18, os.path.join(WORKDIR, 'resnet18.pth'))
${PY_MOCO}
torch.save({'w': torch.ones(1000)}, os.path.join(WORKDIR, 'legacy-small.pt'), _use_new_zipfile_serialization=False)
with zipfile.ZipFile(os.path.join(WORKDIR, 'other.zip'), 'w') as z:
    z.writestr('readme.txt', 'hello')
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(WORKDIR, 'scripted.pt'))
torch.save({'args': argparse.Namespace(lr=0.5, arch='resnet18'), 'w': torch.ones(2)}, os.path.join(WORKDIR, 'args.pt'))
import pickle
plain = {k: v for k, v in value['nested'].items() if k != 'deep'}
plain.update({k: value[k] for k in ('int_keys', 'ordered', 'numpy')})
OUTPUT = {
    'mixed': mixed, 'resnet18': describe(resnet18, digest=True), 'moco': describe(checkpoint, digest=True),
    'plain': describe(plain), 'pickles': [pickle.dumps(plain, protocol=p).hex() for p in range(6)],
    'special': [pickle.dumps([float('inf'), -float('inf'), float('nan'), -0.0], protocol=p).hex() for p in (0, 2)],
}
`;

const dir = tempDir();
let fromPython: {
  mixed: Description;
  resnet18: Description;
  moco: Description;
  plain: Description;
  pickles: string[];
  special: string[];
};
before(() => {
  if (skip === undefined) fromPython = python(PY_FILES, dir.path);
});
after(() => dir.cleanup());

/** Loads `file`, hands the value to `check`, and frees its tensors whatever happens. */
function withLoaded(file: string | Uint8Array, check: (value: torch.LoadedValue) => void): void {
  const loaded = torch.load(file);
  try {
    check(loaded);
  } finally {
    torch.dispose(loaded);
  }
}

describe('torch.load reads what Python torch.save writes', { skip }, () => {
  for (const name of ['mixed.pt', 'legacy.pt', 'protocol1.pt', 'protocol3.pt', 'protocol4.pt', 'protocol5.pt']) {
    test(`every dtype, views, 0-d, empty and nested values: ${name}`, () => {
      withLoaded(join(dir.path, name), (loaded) => {
        matchesPython(loaded, fromPython.mixed, '');
        const values = loaded as Record<string, torch.Tensor>;
        // A transposed tensor keeps its layout; views of a larger storage take only their elements.
        assert.deepEqual(values.transposed?.strides, [1, 5]);
        assert.deepEqual(values.slice?.strides, [3, 1]);
      });
    });
  }

  test('bytes load the same as a path', () => {
    withLoaded(readFileSync(join(dir.path, 'mixed.pt')), (loaded) => matchesPython(loaded, fromPython.mixed, ''));
  });
});

/** Reads a bare pickle (no storages) into the values `load` returns. */
function readPickle(bytes: Uint8Array): unknown {
  const noStorages = (): never => assert.fail('no storages expected');
  return materialize(unpickle(bytes, 0, noStorages, 'error').value);
}

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/ /g, ''), 'hex'));

describe('the pickle reader', () => {
  test('plain Python values pickled with protocols 0 to 5', { skip }, () => {
    fromPython.pickles.forEach((pickled, protocol) => {
      matchesPython(readPickle(hex(pickled)), fromPython.plain, `protocol ${protocol}`);
    });
  });

  test('inf, -inf, nan and -0 in text and binary protocols', { skip }, () => {
    for (const pickled of fromPython.special) {
      const [inf, negInf, nan, negZero] = readPickle(hex(pickled)) as number[];
      assert.equal(inf, Infinity);
      assert.equal(negInf, -Infinity);
      assert.ok(Number.isNaN(nan));
      assert.ok(Object.is(negZero, -0));
    }
  });

  test('integers of every width and sign, worked by hand', () => {
    // LONG1 carries two's-complement little-endian bytes: ff 00 00 00 00 00 (read backwards) is -2^40.
    assert.equal(readPickle(hex('80 02 8a 06 00 00 00 00 00 ff 2e')), -(2 ** 40));
    assert.equal(readPickle(hex('80 02 8a 01 ff 2e')), -1);
    assert.equal(readPickle(hex('80 02 8a 00 2e')), 0);
    assert.equal(readPickle(hex('80 02 8a 09 00 00 00 00 00 00 00 80 00 2e')), 2n ** 63n);
    assert.equal(readPickle(hex('80 02 8a 08 00 00 00 00 00 00 00 80 2e')), -(2n ** 63n));
    assert.equal(readPickle(hex('80 02 8b 02 00 00 00 00 01 2e')), 256);
    assert.equal(readPickle(hex('80 02 4a fe ff ff ff 2e')), -2);
    assert.equal(readPickle(hex('80 02 4d ff ff 2e')), 65535);
    assert.equal(readPickle(new TextEncoder().encode('I-12\n.')), -12);
    assert.equal(
      readPickle(new TextEncoder().encode('L123456789012345678901234567890L\n.')),
      123456789012345678901234567890n,
    );
  });

  test('Python 2 strings, worked by hand', () => {
    assert.equal(readPickle(new TextEncoder().encode("S'caf\\xc3\\xa9'\n.")), 'café');
    assert.equal(readPickle(new TextEncoder().encode("S'it\\'s\\n'\n.")), "it's\n");
    assert.equal(readPickle(hex('80 02 55 03 61 62 63 2e')), 'abc');
  });

  test('corrupt pickles throw saying where', () => {
    assert.throws(
      () => readPickle(hex('80 02 58 05 00 00 00 61 62')),
      /the pickle ends early \(wanted 5 bytes at byte 7/,
    );
    assert.throws(() => readPickle(hex('80 02 ff')), /unknown pickle opcode 0xff at byte 2/);
    assert.throws(() => readPickle(hex('80 02 68 07 2e')), /memo entry 7, which it never stored/);
    assert.throws(() => readPickle(hex('80 02 65 2e')), /closes a MARK it never opened at byte 2/);
    assert.throws(
      () => readPickle(hex('80 02 63 6f 73 0a 73 79 73 74 65 6d 0a 2e')),
      /'os\.system', which the loader does not rebuild/,
    );
  });
});

describe('checkpoints users have', { skip }, () => {
  test("torchvision's resnet18 state dict loads with every key, shape and value", (t) => {
    const started = performance.now();
    withLoaded(join(dir.path, 'resnet18.pth'), (loaded) => {
      t.diagnostic(`resnet18 state dict (45 MB) loaded in ${(performance.now() - started).toFixed(0)} ms`);
      matchesPython(loaded, fromPython.resnet18, '');
      const keys = Object.keys(loaded as object);
      assert.equal(keys.length, 122);
      assert.equal(keys[0], 'conv1.weight');
      assert.equal((loaded as Record<string, torch.Tensor>)['bn1.num_batches_tracked']?.dtype, 'int64');
    });
  });

  test('a MoCo-CXR checkpoint with an Adam state after one step loads', (t) => {
    const started = performance.now();
    withLoaded(join(dir.path, 'checkpoint_0019.pth.tar'), (loaded) => {
      t.diagnostic(`MoCo checkpoint (185 MB) loaded in ${(performance.now() - started).toFixed(0)} ms`);
      matchesPython(loaded, fromPython.moco, '');
      const checkpoint = loaded as {
        epoch: number;
        state_dict: Record<string, torch.Tensor>;
        optimizer: { state: Map<number, Record<string, torch.Tensor>>; param_groups: Record<string, unknown>[] };
      };
      assert.equal(checkpoint.epoch, 20);
      assert.deepEqual(checkpoint.state_dict['module.queue']?.shape, [128, 2048]);
      assert.equal(checkpoint.state_dict['module.queue_ptr']?.dtype, 'int64');
      // Only encoder_q's 62 parameters had gradients, so only they have Adam state; encoder_k's ids follow.
      assert.deepEqual([...checkpoint.optimizer.state.keys()], [...Array(62).keys()]);
      assert.equal((checkpoint.optimizer.param_groups[0]?.params as number[]).length, 124);
      assert.deepEqual(checkpoint.optimizer.param_groups[0]?.betas, [0.9, 0.999]);
    });
  });
});

describe('files saved by PyTorch 2.11 from CUDA', () => {
  const fixture = JSON.parse(readFileSync(join(FIXTURES, 'torch2-cuda.json'), 'utf8')) as {
    device: string;
    value: unknown;
  };
  const expected = toDescription(fixture.value);

  for (const name of ['torch2-cuda.pt', 'torch2-cuda-legacy.pt']) {
    test(`${name} loads on the CPU with identical values`, () => {
      assert.equal(fixture.device, 'cuda');
      withLoaded(join(FIXTURES, name), (loaded) => {
        matchesPython(loaded, expected, '');
        const checkpoint = loaded as { views: Record<string, torch.Tensor>; param: torch.Tensor };
        assert.deepEqual(checkpoint.views.slice?.toArray(), [5, 6, 7, 9, 10, 11]);
        assert.ok(checkpoint.param.requiresGrad, 'an nn.Parameter keeps requires_grad');
      });
    });
  }
});

/** The fixture's JSON marks int-keyed dicts as `__intdict__`; everything else is as `describe` writes it. */
function toDescription(value: unknown): Description {
  if (Array.isArray(value)) return value.map(toDescription);
  if (typeof value !== 'object' || value === null) return value as Description;
  const marked = value as Record<string, unknown>;
  if ('__intdict__' in marked || '__dict__' in marked) {
    const entries = (marked.__intdict__ ?? marked.__dict__) as [string | number, unknown][];
    return { __dict__: entries.map(([key, item]) => [key, toDescription(item)]) };
  }
  if ('__tuple__' in marked) return { __tuple__: (marked.__tuple__ as unknown[]).map(toDescription) };
  return value as Description;
}

/** Every kind of value a checkpoint holds, as JavaScript writes it. */
function mixedValue(): Record<string, unknown> {
  return torch.tidy(() => {
    const values = Array.from({ length: 12 }, (_, i) => (i - 5) * 1.25);
    const x = torch.tensor(new Float32Array(values), [3, 4]);
    const weight = torch.tensor([
      [0.5, -1.5],
      [2, 4],
    ]);
    return {
      float32: x,
      transposed: x.t(),
      slice: x.narrow(0, 1, 2).narrow(1, 1, 3),
      float64: x.to('float64'),
      float16: x.to('float16'),
      bfloat16: x.to('bfloat16'),
      int64: torch.tensor(new BigInt64Array([-(2n ** 62n), -1n, 0n, 2n ** 40n])),
      int32: x.to('int32'),
      int16: x.to('int16'),
      int8: x.to('int8'),
      uint8: x.abs().to('uint8'),
      bool: x.gt(0),
      scalar: torch.scalar(2.5),
      empty: torch.zeros([0, 3]),
      needsGrad: torch.ones([2]).requiresGrad_(true),
      tiedA: weight,
      tiedB: weight,
      epoch: 3,
      lr: torch.pyFloat(1),
      ratio: 0.25,
      big: 2 ** 40,
      negative: -(2 ** 40),
      seed: 2n ** 50n,
      name: 'moco-cxr ü',
      flags: [true, false, null, undefined],
      pair: torch.tuple(1, torch.pyFloat(2), 'x'),
      emptyTuple: torch.tuple(),
      optimizer: {
        state: new Map([
          [0, { step: torch.scalar(1), exp_avg: x }],
          [3, { step: torch.scalar(1), exp_avg: weight }],
        ]),
        param_groups: [{ params: [0, 1, 2, 3], lr: 1e-4, betas: torch.tuple(0.9, 0.999), weight_decay: 0 }],
      },
      named: new Map([
        ['b', 1],
        ['a', 2],
      ]),
    };
  });
}

describe('Python torch.load reads what torch.save writes', { skip }, () => {
  let value: Record<string, unknown>;
  let state: Record<string, torch.Tensor>;
  let fromHere: {
    mixed: Description;
    tied: boolean;
    weightsOnly: { keys: string[]; sums: number[]; count: number };
    roundTrip: string;
  };
  before(() => {
    value = mixedValue();
    state = torch.tidy(() => ({
      'conv1.weight': torch.randn([4, 3, 3, 3]),
      'bn1.running_var': torch.ones([4]),
      'bn1.num_batches_tracked': torch.tensor(new BigInt64Array([7n]), []),
    }));
    torch.save(value, join(dir.path, 'ours.pt'));
    torch.save(state, join(dir.path, 'state.pt'));
    withLoaded(join(dir.path, 'resnet18.pth'), (loaded) => torch.save(loaded, join(dir.path, 'resaved.pth')));
    fromHere = python(
      `
import torchvision
d = torch.load(os.path.join(WORKDIR, 'ours.pt'))
tied = d['tiedA'] is d['tiedB'] and d['optimizer']['state'][3]['exp_avg'] is d['tiedA']
w = torch.load(os.path.join(WORKDIR, 'state.pt'), weights_only=True)
a = torch.load(os.path.join(WORKDIR, 'resnet18.pth'))
b = torch.load(os.path.join(WORKDIR, 'resaved.pth'), weights_only=True)
torchvision.models.resnet18().load_state_dict(b)
bad = [k for k in a if k not in b or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
OUTPUT = {
    'mixed': describe(d), 'tied': tied,
    'weightsOnly': {'keys': list(w), 'sums': [float(v.double().sum()) for v in w.values()], 'count': int(w['bn1.num_batches_tracked'])},
    'roundTrip': 'ok' if list(a) == list(b) and not bad else f'differ: {bad[:5]}',
}`,
      dir.path,
    );
  });
  after(() => {
    torch.dispose(value);
    torch.dispose(state);
  });

  test('every dtype, tuples, int-keyed dicts, and floats and ints kept apart', () => {
    matchesPython(value, fromHere.mixed, '', true);
  });

  test('the same Tensor saved twice loads in Python as one tensor', () => {
    assert.ok(fromHere.tied);
  });

  test('a state dict of tensors loads under weights_only=True', () => {
    assert.deepEqual(fromHere.weightsOnly.keys, Object.keys(state));
    assert.equal(fromHere.weightsOnly.count, 7);
    const sum = (state['conv1.weight']?.data() as Float32Array).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs((fromHere.weightsOnly.sums[0] as number) - sum) < 1e-4);
  });

  test("torchvision's weights make the round trip Python → here → Python unchanged", () => {
    assert.equal(fromHere.roundTrip, 'ok');
  });

  test('what is saved here loads back here unchanged', () => {
    withLoaded(join(dir.path, 'ours.pt'), (again) => {
      matchesPython(again, fromHere.mixed, '');
      const loaded = again as Record<string, unknown>;
      assert.equal(loaded.tiedA, loaded.tiedB);
    });
  });
});

describe('errors name the file and what was wrong', () => {
  test('a missing file', () => {
    const file = join(dir.path, 'nothing-here.pt');
    assert.throws(() => torch.load(file), { message: `load: cannot read '${file}': no such file` });
  });

  test('a folder', () => {
    assert.throws(() => torch.load(dir.path), { message: new RegExp(`'${dir.path}': it is a folder`) });
  });

  test('garbage bytes and an empty file', () => {
    const garbage = join(dir.path, 'garbage.pt');
    writeFileSync(garbage, 'this is not a checkpoint at all');
    assert.throws(() => torch.load(garbage), { message: new RegExp(`'${garbage}'.*neither a zip archive`) });
    const empty = join(dir.path, 'empty.pt');
    writeFileSync(empty, '');
    assert.throws(() => torch.load(empty), { message: new RegExp(`'${empty}'.*the file is empty`) });
    assert.throws(() => torch.load(new Uint8Array([1, 2, 3]), { name: 'upload.pt' }), { message: /'upload\.pt'/ });
  });

  test('a truncated zip', () => {
    const whole = join(dir.path, 'whole.pt');
    torch.tidy(() => torch.save({ w: torch.randn([64, 64]), step: 3 }, whole));
    const bytes = readFileSync(whole);
    for (const cut of [bytes.byteLength - 10, Math.floor(bytes.byteLength / 2), 100]) {
      const truncated = join(dir.path, `truncated-${cut}.pt`);
      writeFileSync(truncated, bytes.subarray(0, cut));
      assert.throws(() => torch.load(truncated), {
        message: new RegExp(`load: cannot load '${truncated}': .*truncated`),
      });
    }
  });

  test('a truncated legacy file', { skip }, () => {
    const bytes = readFileSync(join(dir.path, 'legacy-small.pt'));
    const truncated = join(dir.path, 'legacy-truncated.pt');
    for (const cut of [bytes.byteLength - 100, 400, 40]) {
      writeFileSync(truncated, bytes.subarray(0, cut));
      assert.throws(() => torch.load(truncated), {
        message: new RegExp(`'${truncated}': .*(truncated|ends early|cut short)`),
      });
    }
  });

  test('a zip that is not a checkpoint, and a TorchScript module', { skip }, () => {
    const other = join(dir.path, 'other.zip');
    assert.throws(() => torch.load(other), { message: new RegExp(`'${other}': .*no data\\.pkl.*readme\\.txt`) });
    const scripted = join(dir.path, 'scripted.pt');
    assert.throws(() => torch.load(scripted), { message: new RegExp(`'${scripted}': it is a TorchScript module`) });
  });

  test('an object of an unknown Python class, and keeping it as data when asked', { skip }, () => {
    const file = join(dir.path, 'args.pt');
    assert.throws(() => torch.load(file), { message: new RegExp(`'${file}': .*'argparse\\.Namespace'`) });
    const loaded = torch.load(file, { unknownClasses: 'keep' }) as { args: torch.PythonObject; w: torch.Tensor };
    try {
      assert.equal(loaded.args.pythonClass, 'argparse.Namespace');
      assert.deepEqual(loaded.args.state, { lr: 0.5, arch: 'resnet18' });
      assert.deepEqual(loaded.w.toArray(), [1, 1]);
    } finally {
      torch.dispose(loaded);
    }
  });

  test('values a checkpoint cannot hold name their path', () => {
    const file = join(dir.path, 'bad.pt');
    assert.throws(() => torch.save({ a: { b: [1, new Float32Array(2)] } }, file), {
      message: /save: 'a\.b\[1\]' is a typed array; wrap it with torch\.tensor\(\)/,
    });
    const mixedKeys = new Map<unknown, number>([
      ['x', 1],
      [2, 3],
    ]);
    assert.throws(() => torch.save({ m: mixedKeys }, file), { message: /'m' is a Map mixing string and integer keys/ });
    assert.throws(() => torch.save({ f: () => 1 }, file), { message: /'f' is a function/ });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    assert.throws(() => torch.save(cycle, file), { message: /nests deeper than 64 levels/ });
    const disposed = torch.zeros([2]);
    disposed.dispose();
    assert.throws(() => torch.save({ w: disposed }, file), { message: /'w' is a disposed tensor/ });
  });

  test('a failed save leaves the previous file intact and no temporary file behind', () => {
    const file = join(dir.path, 'keep.pt');
    torch.save({ epoch: 1 }, file);
    assert.throws(() => torch.save({ epoch: new Date() }, file), { message: /'epoch' is not a plain object/ });
    assert.deepEqual(torch.load(file), { epoch: 1 });
    const missingFolder = join(dir.path, 'no-such-folder', 'x.pt');
    assert.throws(() => torch.save({ epoch: 1 }, missingFolder), {
      message: new RegExp(`save: cannot write '${missingFolder}'`),
    });
    assert.deepEqual(
      readdirSync(dir.path).filter((name) => name.endsWith('.tmp')),
      [],
    );
  });
});
