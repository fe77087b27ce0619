import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { MoCo } from '../../src/moco/model.js';
import { enqueueKeys } from '../../src/moco/contrastive.js';
import * as torch from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const STEPS = 3;
const BATCH = 4;
const QUEUE = 8; // two batches: the third step wraps the ring around
const DIM = 16;
const LR = 0.05;

interface Trace {
  losses: number[];
  logits: number[][];
  queues: number[][];
  pointers: number[];
  keyParams: Record<string, number[]>;
}

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
out = {'losses': [], 'logits': [], 'queues': [], 'pointers': []}
for step in range(${STEPS}):
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
    with torch.no_grad():
        for p in q_enc.parameters():
            p.sub_(p.grad, alpha=${LR})
            p.grad = None
    out['losses'].append(loss.item()); out['logits'].append(logits.detach().flatten().tolist())
    out['queues'].append(queue.flatten().tolist()); out['pointers'].append(ptr)
sd = k_enc.state_dict()
out['keyParams'] = {n: sd[n].flatten().tolist() for n in ['conv1.weight', 'layer4.1.bn2.weight', 'fc.0.weight', 'fc.2.bias']}
OUTPUT = out
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
    'loss, logits, queue and momentum updates equal PyTorch over steps with a wrap-around',
    { skip: oracleMissing() },
    () => {
      const dir = tempDir();
      try {
        torch.manualSeed(1);
        const model = new MoCo({ queueSize: QUEUE, dim: DIM });
        model.train();
        torch.tidy(() => torch.save(model.stateDict(), join(dir.path, 'init.pt')));
        const inputs: Record<string, torch.Tensor> = {};
        for (let s = 0; s < STEPS; s++) {
          inputs[`q${s}`] = torch.randn([BATCH, 3, 64, 64]);
          inputs[`k${s}`] = torch.randn([BATCH, 3, 64, 64]);
        }
        torch.save(inputs, join(dir.path, 'inputs.pt'));

        const ours: Trace = { losses: [], logits: [], queues: [], pointers: [], keyParams: {} };
        const params = model.encoderQ.parameters();
        for (let s = 0; s < STEPS; s++) {
          torch.tidy(() => {
            const out = model.step(inputs[`q${s}`]!, inputs[`k${s}`]!);
            out.loss.backward();
            torch.noGrad(() => {
              for (const p of params) {
                const g = p.grad;
                if (g !== null) p.sub_(g, LR);
                p.grad = null;
              }
            });
            ours.losses.push(out.loss.item());
            ours.logits.push(out.logits.toArray());
            ours.queues.push(model.queue.toArray());
            ours.pointers.push(model.queuePointer.item());
          });
        }
        for (const name of ['conv1.weight', 'layer4.1.bn2.weight', 'fc.0.weight', 'fc.2.bias']) {
          ours.keyParams[name] = model.encoderK.getTensor(name).toArray();
        }
        const theirs = runPython<Trace>(PYTHON_MOCO, null, dir.path);
        assert.deepEqual(ours.pointers, theirs.pointers);
        assert.deepEqual(ours.pointers, [4, 0, 4]);
        for (let s = 0; s < STEPS; s++) {
          assert.ok(
            Math.abs(ours.losses[s]! - theirs.losses[s]!) <= 1e-5,
            `loss ${s}: ${ours.losses[s]} vs ${theirs.losses[s]}`,
          );
          assert.ok(maxAbsDiff(ours.logits[s]!, theirs.logits[s]!) <= 1e-4, `logits ${s}`);
          assert.ok(maxAbsDiff(ours.queues[s]!, theirs.queues[s]!) <= 1e-5, `queue ${s}`);
        }
        for (const [name, values] of Object.entries(theirs.keyParams)) {
          assert.ok(maxAbsDiff(ours.keyParams[name]!, values) <= 1e-5, `key encoder ${name}`);
        }
        torch.dispose(inputs);
        model.dispose();
      } finally {
        dir.cleanup();
      }
    },
  );
});
