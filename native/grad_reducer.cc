// Gradient allreduce overlapped with backward, through libtorch's own
// c10d::Reducer (the engine of PyTorch's DistributedDataParallel).
//
// The Reducer puts a post-hook on each parameter's gradient accumulator. As
// autograd produces a gradient, the hook copies it into its bucket (a flat
// buffer); once every gradient of a bucket is in, the bucket's allreduce is
// launched on the process group while backward goes on computing the earlier
// layers' gradients. When the last bucket has been launched the Reducer queues
// an engine callback that, at the end of the backward pass, waits for every
// bucket and copies the results back into the parameters' `.grad`. So the
// gradients are reduced when torch::autograd::backward returns.
//
// Backward runs here on a libuv worker thread (Run(), as every collective), so
// the JavaScript thread is free while it runs: on the CPU the autograd engine
// executes the graph on the thread that calls it, and the hooks with it.
//
// Choices, after DDP's defaults: the parameters are given to the Reducer in
// reverse order (gradients arrive roughly from the last layer to the first),
// buckets of 25 MB with a first one of 1 MB, rebuilt once after the first pass
// in the order the gradients actually arrived (rank 0's order, broadcast),
// gradients copied into the buckets (not bucket views), and every parameter is
// expected to receive a gradient in every pass (no find_unused_parameters: a
// pass that leaves one out is reported as an error).
//
// The reduction itself is a communication hook of ours rather than the
// Reducer's default (which divides each gradient by the world size before
// summing): it sums, and for 'avg' divides the sum by the world size, as the
// after-backward path does, so that both paths compute the same numbers.
#include "common.h"

#ifdef MOCO_C10D
#include "c10d_group.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <unordered_set>
#include <vector>
#endif

namespace moco {

#ifdef MOCO_C10D

namespace {

using c10dgroup::Group;
using c10dgroup::GroupOf;
using c10dgroup::Run;
using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// What one backward pass did, written by the hooks (on the thread running
// backward) and by the group's threads (bucket completions).
struct PassRecord {
  std::atomic<int64_t> gradientsReady{0};  // gradients accumulated so far in this pass
  std::atomic<int> launched{0};            // buckets whose allreduce was started
  std::atomic<int> launchedEarly{0};       // ... while some gradient was still to be computed
  std::atomic<int> completed{0};           // buckets whose allreduce has finished
  std::atomic<bool> lastLaunched{false};
  std::atomic<int64_t> startNs{0};
  std::atomic<int64_t> computeEndNs{0};      // when the graph's last node had run
  std::atomic<int> completedAtComputeEnd{0};  // buckets already reduced by then

  void Reset() {
    gradientsReady = 0;
    launched = 0;
    launchedEarly = 0;
    completed = 0;
    lastLaunched = false;
    startNs = NowNs();
    computeEndNs = 0;
    completedAtComputeEnd = 0;
  }
};

// Counts the gradients of a pass. Put on each accumulator before the Reducer's
// own hook, so that when the Reducer launches a bucket from within the hook of
// a parameter, the count already includes that parameter.
struct CountGradient : torch::autograd::FunctionPostHook {
  explicit CountGradient(std::shared_ptr<PassRecord> pass) : pass_(std::move(pass)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /* inputs */) override {
    pass_->gradientsReady++;
    return outputs;
  }

 private:
  std::shared_ptr<PassRecord> pass_;
};

// The Reducer's communication hook: an in-place sum of the bucket across ranks,
// then, for 'avg', a division by the world size on the group's thread as the
// sum arrives. It also records when buckets were launched and finished.
class ReduceHook : public c10d::CommHookInterface {
 public:
  ReduceHook(c10::intrusive_ptr<c10d::ProcessGroup> pg, bool average, std::shared_ptr<PassRecord> pass,
             int64_t gradients)
      : pg_(std::move(pg)), average_(average), pass_(std::move(pass)), gradients_(gradients) {}

  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    auto pass = pass_;
    pass->launched++;
    if (pass->gradientsReady.load() < gradients_) pass->launchedEarly++;
    if (bucket.isLast()) {
      pass->lastLaunched = true;
      // Queued before the Reducer queues its finalizer, so it runs first: at
      // the end of the graph, before any waiting for the buckets.
      torch::autograd::Engine::get_default_engine().queue_callback([pass] {
        pass->computeEndNs = NowNs();
        pass->completedAtComputeEnd = pass->completed.load();
      });
    }
    at::Tensor buffer = bucket.getBufferRef();
    std::vector<at::Tensor> tensors{buffer};
    auto summed = pg_->allreduce(tensors)->getFuture();
    const int64_t size = pg_->getSize();
    const bool average = average_;
    return summed->then(
        [buffer, size, average, pass](c10::ivalue::Future& done) mutable {
          (void)done.value();  // rethrows the collective's error, if any
          if (average) {
            at::NoGradGuard no_grad;
            buffer.div_(size);
          }
          pass->completed++;
          return c10::IValue(buffer);
        },
        c10::TensorType::get());
  }

  at::Tensor parseHookResult(const c10::IValue& result) override { return result.toTensor(); }

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
  bool average_;
  std::shared_ptr<PassRecord> pass_;
  int64_t gradients_;
};

// The Reducer warns once when a gradient's strides differ from its bucket
// view's. With channels-last weights a 1×1 convolution's kernel is contiguous
// and channels-last at once, and autograd may hand its gradient back in either
// layout; the copy into the bucket takes any layout, so that warning says
// nothing of use here and is dropped. Every other warning goes on to the
// handler that was in place.
class DropStrideWarning : public c10::WarningHandler {
 public:
  explicit DropStrideWarning(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::SourceLocation& where, const std::string& msg, const bool verbatim) override {
    if (msg.rfind("Grad strides do not match bucket view strides", 0) == 0) return;
    next_->process(where, msg, verbatim);
  }

 private:
  c10::WarningHandler* next_;
};

// One Reducer over a list of parameters, with our counting hooks beside its own.
struct GradReducer {
  std::shared_ptr<Group> group;
  std::vector<at::Tensor> params;  // in the Reducer's order (the caller's, reversed)
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> hookKeys;
  std::shared_ptr<PassRecord> pass = std::make_shared<PassRecord>();
  std::unique_ptr<c10d::Reducer> reducer;
  std::atomic<bool> busy{false};

  ~GradReducer() {
    try {
      reducer.reset();  // removes the Reducer's hooks
    } catch (...) {
    }
    for (size_t i = 0; i < hookKeys.size(); i++) accumulators[i]->del_post_hook(hookKeys[i]);
  }
};

std::shared_ptr<GradReducer> ReducerOf(const Napi::Value& value) {
  if (!value.IsExternal()) ThrowType(value.Env(), "expected a gradient reducer handle");
  auto* holder = value.As<Napi::External<std::shared_ptr<GradReducer>>>().Data();
  if (!holder || !*holder) ThrowType(value.Env(), "the gradient reducer was destroyed");
  return *holder;
}

int64_t ByteOption(Napi::Object o, const char* key, int64_t fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 1) {
    ThrowType(o.Env(), std::string("createGradReducer: '") + key + "' must be a positive number of bytes");
  }
  return static_cast<int64_t>(v.As<Napi::Number>().DoubleValue());
}

// createGradReducer(group, params, {op, bucketBytes, firstBucketBytes}) -> handle.
// Parameters in the order the model lists them; each a leaf that requires grad.
Napi::Value CreateGradReducer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  if (info.Length() < 2 || !info[1].IsArray()) ThrowType(env, "createGradReducer: params must be an array of tensors");
  Napi::Array array = info[1].As<Napi::Array>();
  if (array.Length() == 0) ThrowType(env, "createGradReducer: params must hold at least one tensor");
  Napi::Object options = info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  Napi::Value opValue = options.Get("op");
  std::string op = opValue.IsString() ? std::string(opValue.As<Napi::String>()) : "avg";
  if (op != "avg" && op != "sum") ThrowType(env, "createGradReducer: op must be 'avg' or 'sum', got '" + op + "'");
  int64_t bucketBytes = ByteOption(options, "bucketBytes", c10d::kDefaultBucketBytesCap);
  int64_t firstBucketBytes = ByteOption(options, "firstBucketBytes", c10d::kDefaultFirstBucketBytes);

  auto state = std::make_shared<GradReducer>();
  state->group = group;
  std::unordered_set<const c10::TensorImpl*> seen;
  for (uint32_t i = array.Length(); i-- > 0;) {
    const at::Tensor& p = TensorHandle::FromValue(array.Get(i), "createGradReducer: params");
    if (!p.requires_grad() || !p.is_leaf()) {
      ThrowType(env, "createGradReducer: params[" + std::to_string(i) +
                         "] must be a leaf tensor that requires grad (leave frozen parameters out)");
    }
    if (!seen.insert(p.unsafeGetTensorImpl()).second) {
      ThrowType(env, "createGradReducer: params[" + std::to_string(i) + "] is listed twice");
    }
    state->params.push_back(p);
  }
  const size_t n = state->params.size();
  std::vector<bool> dense(n, false);
  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> limits;
  // Sorted by the smallest index they hold: the last layers' bucket first.
  std::tie(buckets, limits) = c10d::compute_bucket_assignment_by_size(
      state->params, {static_cast<size_t>(firstBucketBytes), static_cast<size_t>(bucketBytes)}, dense);
  for (const auto& p : state->params) {
    auto accumulator = torch::autograd::impl::grad_accumulator(p);
    state->hookKeys.push_back(accumulator->add_post_hook(std::make_unique<CountGradient>(state->pass)));
    state->accumulators.push_back(std::move(accumulator));
  }
  state->reducer = std::make_unique<c10d::Reducer>(state->params, std::move(buckets), std::move(limits), group->pg,
                                                   dense, bucketBytes, /*find_unused_parameters=*/false,
                                                   /*gradient_as_bucket_view=*/false,
                                                   std::unordered_map<size_t, std::string>(), firstBucketBytes);
  state->reducer->register_comm_hook(
      std::make_unique<ReduceHook>(group->pg, op == "avg", state->pass, static_cast<int64_t>(n)));
  return Napi::External<std::shared_ptr<GradReducer>>::New(
      env, new std::shared_ptr<GradReducer>(state), [](Napi::Env, std::shared_ptr<GradReducer>* p) { delete p; });
}

// destroyGradReducer(handle): drops this handle's reference; the Reducer and its
// hooks go once no backward in flight holds it.
Napi::Value DestroyGradReducer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) ThrowType(env, "destroyGradReducer(handle)");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<GradReducer>>>().Data();
  if (holder) holder->reset();
  return env.Undefined();
}

// reducerBackward(handle, losses) -> Promise<stats>: backward from the losses
// on a worker thread with the buckets reduced as they fill; when it resolves
// every parameter's .grad holds the reduced gradient. Every rank must call it
// in the same step.
Napi::Value ReducerBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto state = ReducerOf(info[0]);
  if (info.Length() < 2 || !info[1].IsArray()) ThrowType(env, "reducerBackward: losses must be an array of tensors");
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<at::Tensor> losses;
  for (uint32_t i = 0; i < array.Length(); i++) {
    const at::Tensor& t = TensorHandle::FromValue(array.Get(i), "reducerBackward: losses");
    if (!t.requires_grad()) ThrowType(env, "reducerBackward: losses[" + std::to_string(i) + "] has no graph");
    losses.push_back(t);
  }
  if (losses.empty()) ThrowType(env, "reducerBackward: give at least one loss");
  auto stats = std::make_shared<std::vector<double>>();
  auto work = [state, losses, stats]() {
    if (state->busy.exchange(true)) throw std::runtime_error("reducerBackward: a backward of this reducer is running");
    struct Release {
      std::atomic<bool>& flag;
      ~Release() { flag = false; }
    } release{state->busy};
    // As DDP before each forward: a no-op but once, after the first pass,
    // when it re-buckets in arrival order (a broadcast from rank 0).
    state->reducer->rebuild_buckets();
    PassRecord& pass = *state->pass;
    pass.Reset();
    DropStrideWarning quiet(c10::Warning::get_warning_handler());
    c10::Warning::WarningHandlerGuard warnings(&quiet);
    state->reducer->prepare_for_backward(losses);
    torch::autograd::backward(losses);
    const int64_t endNs = NowNs();
    if (!pass.lastLaunched) {
      throw std::runtime_error(
          "reducerBackward: " + std::to_string(state->params.size() - pass.gradientsReady.load()) + " of " +
          std::to_string(state->params.size()) +
          " parameters received no gradient in this backward pass, so their buckets were never reduced; every "
          "parameter given to the reducer must take part in the loss (leave unused ones out)");
    }
    const double ms = 1e-6;
    *stats = {static_cast<double>(pass.launched.load()),
              static_cast<double>(pass.launchedEarly.load()),
              static_cast<double>(pass.completedAtComputeEnd.load()),
              (pass.computeEndNs.load() - pass.startNs.load()) * ms,
              (endNs - pass.computeEndNs.load()) * ms};
  };
  return Run(env, work, [stats](Napi::Env env) -> Napi::Value {
    Napi::Object out = Napi::Object::New(env);
    const char* names[] = {"buckets", "launchedEarly", "reducedBeforeEnd", "computeMs", "exposedMs"};
    for (size_t i = 0; i < stats->size(); i++) out.Set(names[i], Napi::Number::New(env, (*stats)[i]));
    return out;
  });
}

}  // namespace

void InitGradReducer(Napi::Env env, Napi::Object dist) {
  dist.Set("createGradReducer", Napi::Function::New(env, CreateGradReducer, "createGradReducer"));
  dist.Set("destroyGradReducer", Napi::Function::New(env, DestroyGradReducer, "destroyGradReducer"));
  dist.Set("reducerBackward", Napi::Function::New(env, ReducerBackward, "reducerBackward"));
}

#endif  // MOCO_C10D

}  // namespace moco
