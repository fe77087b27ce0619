import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { MoCo } from '../../src/moco/model.js';
import { enqueueKeys } from '../../src/moco/contrastive.js';
import * as torch from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';
import { assertClose, chainLength } from '../helpers/tolerance.js';

const STEPS = 3;
// Eight images leave 32 values per channel to train-mode BatchNorm in the last
// stage (2x2): with fewer, its division by their spread turns rounding noise
// into large differences on other CPUs.
const BATCH = 8;
const SIZE = 64;
const QUEUE = 16; // two batches: the third step wraps the ring around
const DIM = 16;
const LR = 0.05;
const QUERY_GRADS = ['conv1.weight', 'layer4.1.bn2.weight', 'fc.0.weight', 'fc.2.bias'];
const KEY_PARAMS = ['conv1.weight', 'layer4.1.bn2.weight', 'fc.0.weight', 'fc.2.bias'];
const BUFFERS = ['encoder_q.bn1.running_mean', 'encoder_k.layer4.1.bn2.running_var'];

/** One step as seen from the state it started in. */
interface StepTrace {
  loss: number;
  logits: number[];
  queue: number[];
  pointer: number;
  /** Gradients of some query-encoder parameters. */
  grads: Record<string, number[]>;
  /** Some key-encoder parameters after the momentum update. */
  keyParams: Record<string, number[]>;
  /** Some BatchNorm running statistics after the step's forward passes. */
  buffers: Record<string, number[]>;
}

// PyTorch trains STEPS steps as the reference code does (SGD on the query
// encoder between steps) and saves the whole state before each one, so that
// here each step starts from PyTorch's state: errors cannot compound.
const PYTHON_MOCO = `
import torch, torchvision
torch.set_num_threads(2)
state = torch.load(os.path.join(WORKDIR, 'init.pt'))
inputs = torch.load(os.path.join(WORKDIR, 'inputs.pt'))
def encoder(prefix):
    net = torchvision.models.resnet18(num_classes=${DIM})
    net.fc = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), net.fc)
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    net.train()
    return net
q_enc, k_enc = encoder('encoder_q.'), encoder('encoder_k.')
for p in k_enc.parameters(): p.requires_grad = False
queue = state['queue'].clone(); ptr = int(state['queue_ptr'][0])
m, T = 0.999, 0.2
steps = []
for step in range(${STEPS}):
    snapshot = {'encoder_q.' + k: v.clone() for k, v in q_enc.state_dict().items()}
    snapshot.update({'encoder_k.' + k: v.clone() for k, v in k_enc.state_dict().items()})
    snapshot['queue'] = queue.clone(); snapshot['queue_ptr'] = torch.tensor([ptr])
    torch.save(snapshot, os.path.join(WORKDIR, 'state%d.pt' % step))
    im_q, im_k = inputs['q%d' % step], inputs['k%d' % step]
    q = torch.nn.functional.normalize(q_enc(im_q), dim=1)
    with torch.no_grad():
        for pq, pk in zip(q_enc.parameters(), k_enc.parameters()):
            pk.data = pk.data * m + pq.data * (1. - m)
        k = torch.nn.functional.normalize(k_enc(im_k), dim=1)
    l_pos = torch.einsum('nc,nc->n', [q, k]).unsqueeze(-1)
    l_neg = torch.einsum('nc,ck->nk', [q, queue.clone().detach()])
    logits = torch.cat([l_pos, l_neg], dim=1) / T
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))
    queue[:, ptr:ptr + k.shape[0]] = k.T
    ptr = (ptr + k.shape[0]) % queue.shape[1]
    loss.backward()
    named = dict(q_enc.named_parameters())
    ksd, qsd = k_enc.state_dict(), q_enc.state_dict()
    sd = {**{'encoder_q.' + n: v for n, v in qsd.items()}, **{'encoder_k.' + n: v for n, v in ksd.items()}}
    steps.append({'loss': loss.item(), 'logits': logits.detach().flatten().tolist(),
                  'queue': queue.flatten().tolist(), 'pointer': ptr,
                  'grads': {n: named[n].grad.flatten().tolist() for n in ${JSON.stringify(QUERY_GRADS)}},
                  'keyParams': {n: ksd[n].flatten().tolist() for n in ${JSON.stringify(KEY_PARAMS)}},
                  'buffers': {n: sd[n].flatten().tolist() for n in ${JSON.stringify(BUFFERS)}}})
    with torch.no_grad():
        for p in q_enc.parameters():
            p.sub_(p.grad, alpha=${LR})
            p.grad = None
OUTPUT = steps
`;

describe('MoCo', () => {
  test('names its state as the reference code does', () => {
    torch.manualSeed(0);
    const model = new MoCo({ queueSize: QUEUE, dim: DIM });
    const keys = Object.keys(model.stateDict());
    assert.ok(keys.includes('encoder_q.conv1.weight'));
    assert.ok(keys.includes('encoder_q.fc.0.weight') && keys.includes('encoder_q.fc.2.bias'));
    assert.ok(keys.includes('encoder_k.layer4.1.bn2.running_var'));
    assert.deepEqual(model.queue.shape, [DIM, QUEUE]);
    assert.equal(model.queuePointer.dtype, 'int64');
    // The key encoder starts as a copy and takes no gradients.
    const q = model.encoderQ.getTensor('conv1.weight');
    const k = model.encoderK.getTensor('conv1.weight');
    assert.equal(maxAbsDiff(q.data() as Float32Array, k.data() as Float32Array), 0);
    assert.equal(k.requiresGrad, false);
    // Queue columns are unit vectors.
    const norms = torch.tidy(() => model.queue.norm(2, 0).sub(1).abs().max().item());
    assert.ok(norms < 1e-5);
    model.dispose();
  });

  test('rejects a batch that does not divide the queue', () => {
    const queue = torch.zeros([4, 10]);
    const pointer = torch.zeros([1], { dtype: 'int64' });
    const keys = torch.zeros([4, 4]);
    assert.throws(() => enqueueKeys(queue, pointer, keys), /queue size 10 is not a multiple of the batch size 4/);
    torch.dispose([queue, pointer, keys]);
  });

  test(
    "each step from PyTorch's state gives its loss, logits, gradients, queue, momentum update and statistics",
    { skip: oracleMissing() },
    () => {
      const dir = tempDir();
      try {
        torch.manualSeed(1);
        const model = new MoCo({ queueSize: QUEUE, dim: DIM });
        model.train();
        // A query encoder unlike the key encoder, so that the momentum update shows from the first step.
        const other = new MoCo({ queueSize: QUEUE, dim: DIM });
        torch.tidy(() => model.encoderQ.loadStateDict(other.encoderQ.stateDict()));
        other.dispose();
        torch.tidy(() => torch.save(model.stateDict(), join(dir.path, 'init.pt')));
        const inputs: Record<string, torch.Tensor> = {};
        for (let s = 0; s < STEPS; s++) {
          inputs[`q${s}`] = torch.randn([BATCH, 3, SIZE, SIZE]);
          inputs[`k${s}`] = torch.randn([BATCH, 3, SIZE, SIZE]);
        }
        torch.save(inputs, join(dir.path, 'inputs.pt'));
        const theirs = runPython<StepTrace[]>(PYTHON_MOCO, null, dir.path);

        // Roundings feeding one value: the encoder's chain of reductions, and at
        // most a whole batch's pixels for a weight gradient or a statistic.
        const ops = chainLength(model.encoderQ.parameters().map((p) => p.shape)) + BATCH * SIZE * SIZE;
        const params = new Map(model.encoderQ.namedParameters());
        for (let s = 0; s < STEPS; s++) {
          const want = theirs[s]!;
          const state = torch.load(join(dir.path, `state${s}.pt`)) as Record<string, torch.Tensor>;
          // First the step on inputs nudged by an ulp: how far float32 noise moves
          // each gradient (see `measured` in test/helpers/tolerance.ts).
          torch.tidy(() => model.loadStateDict(state));
          const nudged = torch.tidy(() => {
            const out = model.step(inputs[`q${s}`]!.mul(1 + 2 ** -23), inputs[`k${s}`]!);
            out.loss.backward();
            return new Map(QUERY_GRADS.map((name) => [name, params.get(name)!.grad!.toArray()]));
          });
          for (const p of params.values()) p.grad = null;
          torch.tidy(() => model.loadStateDict(state));
          torch.dispose(state);
          torch.tidy(() => {
            const out = model.step(inputs[`q${s}`]!, inputs[`k${s}`]!);
            out.loss.backward();
            assert.equal(model.queuePointer.item(), want.pointer, `pointer after step ${s}`);
            const logits = out.logits.toArray();
            assertClose(logits, want.logits, `logits ${s}`, { ops, scale: 1 / 0.2 });
            // Cross-entropy moves by at most twice the largest change of a logit.
            assertClose(out.loss.item(), want.loss, `loss ${s}`, { ops: 4 * ops, scale: 1 / 0.2 });
            assertClose(model.queue.toArray(), want.queue, `queue ${s}`, { ops, scale: 1 });
            for (const name of QUERY_GRADS) {
              const grad = params.get(name)!.grad!.toArray();
              assertClose(grad, want.grads[name]!, `step ${s}: gradient of ${name}`, {
                ops: 2 * ops,
                measured: maxAbsDiff(grad, nudged.get(name) ?? []),
              });
            }
            for (const name of KEY_PARAMS) {
              // Elementwise: m · k + (1 - m) · q.
              assertClose(model.encoderK.getTensor(name).toArray(), want.keyParams[name]!, `step ${s}: key ${name}`, {
                ops: 4,
              });
            }
            for (const name of BUFFERS) {
              assertClose(model.getTensor(name).toArray(), want.buffers[name]!, `step ${s}: ${name}`, { ops });
            }
          });
          for (const p of params.values()) p.grad = null;
        }
        assert.deepEqual(
          theirs.map((t) => t.pointer),
          [8, 0, 8],
        );
        torch.dispose(inputs);
        model.dispose();
      } finally {
        dir.cleanup();
      }
    },
  );
});
