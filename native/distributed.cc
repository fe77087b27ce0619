// Process groups over libtorch's own c10d: a Gloo group joined through a
// TCPStore or FileStore, and its collectives (allreduce, broadcast, allgather,
// barrier) run on a libuv worker thread so that the JavaScript event loop keeps
// turning while a rank waits for its peers. Each call resolves a promise.
//
// The rendezvous follows PyTorch 1.13's init_process_group("gloo") step by step,
// so that Python ranks and ours can share one group:
//   1. the store: rank 0 serves a multi-tenant TCPStore and the others connect;
//      under torchelastic's agent store (TORCHELASTIC_USE_AGENT_STORE=True)
//      every rank is a client and the store sits under "/worker/attempt_<n>";
//   2. PrefixStore("default_pg") over it, and the default group under a further
//      PrefixStore("0") (the group's name);
//   3. a barrier on the store: every rank adds 1 to "store_based_barrier_key:1"
//      under "default_pg" and waits until the count is the world size;
//   4. setSequenceNumberForGroup(): rank 0 writes the group's sequence number to
//      the store and the others read it. Python ranks wait for that key, so
//      without this step they hang.
//
// Compiled with MOCO_C10D (binding.gyp sets it with USE_C10D_GLOO for the
// Debian libtorch); without it every function throws a clear error. NCCL needs
// a CUDA libtorch and MOCO_C10D_NCCL; this file names that switch in its error.
#include "common.h"

#ifdef MOCO_C10D
#include "c10d_group.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MOCO_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace moco {

#ifdef MOCO_C10D

void InitGradReducer(Napi::Env env, Napi::Object dist);  // grad_reducer.cc

namespace {

using c10dgroup::Group;
using c10dgroup::GroupOf;
using c10dgroup::Millis;
using c10dgroup::Run;

std::string StringField(Napi::Object o, const char* key, const std::string& fallback = "") {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) ThrowType(o.Env(), std::string("initProcessGroup: '") + key + "' must be a string");
  return v.As<Napi::String>();
}

int64_t IntField(Napi::Object o, const char* key, int64_t fallback, int64_t min, int64_t max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) ThrowType(o.Env(), std::string("initProcessGroup: '") + key + "' must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    ThrowType(o.Env(), std::string("initProcessGroup: '") + key + "' must be an integer in [" +
                           std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

bool BoolField(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) ThrowType(o.Env(), std::string("initProcessGroup: '") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// The tensors of a JS array: each must be dense and contiguous, as Gloo reads
// their storage directly.
std::vector<at::Tensor> TensorList(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) ThrowType(env, std::string(what) + " must be an array of tensors");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    const at::Tensor& t = TensorHandle::FromValue(array.Get(i), what);
    if (!t.is_contiguous() || t.layout() != at::kStrided) {
      ThrowType(env, std::string(what) + "[" + std::to_string(i) + "] must be a dense contiguous tensor");
    }
    out.push_back(t);
  }
  if (out.empty()) ThrowType(env, std::string(what) + " must hold at least one tensor");
  return out;
}

Millis TimeoutArg(const Napi::CallbackInfo& info, size_t index, const Group& group) {
  if (info.Length() <= index || info[index].IsUndefined()) return group.timeout;
  if (!info[index].IsNumber() || info[index].As<Napi::Number>().DoubleValue() <= 0) {
    ThrowType(info.Env(), "timeoutMs must be a positive number");
  }
  return Millis(static_cast<int64_t>(info[index].As<Napi::Number>().DoubleValue()));
}

// Waits for a collective; a timeout or a peer's failure becomes one message.
void Await(const c10::intrusive_ptr<c10d::Work>& work, Millis timeout, const std::string& what) {
  try {
    if (!work->wait(timeout)) throw std::runtime_error("did not complete");
  } catch (const c10::Error& e) {
    throw std::runtime_error(what + " failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(what + " failed: " + e.what());
  }
}

// PyTorch 1.13's _store_based_barrier: count in, then poll until all are in.
void StoreBarrier(c10d::Store& store, int size, Millis timeout) {
  const std::string key = "store_based_barrier_key:1";
  store.add(key, 1);
  auto start = std::chrono::steady_clock::now();
  while (store.add(key, 0) < size) {
    if (std::chrono::steady_clock::now() - start > timeout) {
      throw std::runtime_error("timed out after " + std::to_string(timeout.count()) +
                               " ms waiting for all " + std::to_string(size) +
                               " ranks to join the group (store key default_pg/" + key + " holds " +
                               std::to_string(store.add(key, 0)) + ")");
    }
    std::this_thread::sleep_for(Millis(10));
  }
}

// initProcessGroup(options) -> Promise<handle>
Napi::Value InitProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "initProcessGroup(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::string backend = StringField(o, "backend", "gloo");
  std::string storeKind = StringField(o, "store", "tcp");
  std::string host = StringField(o, "host", "127.0.0.1");
  int port = static_cast<int>(IntField(o, "port", 29500, 0, 65535));
  std::string path = StringField(o, "path");
  int size = static_cast<int>(IntField(o, "worldSize", 1, 1, 1 << 20));
  int rank = static_cast<int>(IntField(o, "rank", 0, 0, size - 1));
  bool isServer = BoolField(o, "isServer", rank == 0);
  std::string storePrefix = StringField(o, "storePrefix");
  Millis timeout(IntField(o, "timeoutMs", 1800000, 1, int64_t(1) << 40));
  std::string iface = StringField(o, "interface");
  std::string deviceHost = StringField(o, "deviceHost");
  int threads = static_cast<int>(IntField(o, "threads", 2, 1, 64));
  if (storeKind != "tcp" && storeKind != "file") ThrowType(env, "initProcessGroup: store must be 'tcp' or 'file'");
  if (storeKind == "file" && path.empty()) ThrowType(env, "initProcessGroup: a file store needs 'path'");
  if (backend == "nccl") {
#ifndef MOCO_C10D_NCCL
    throw Napi::Error::New(env,
                           "initProcessGroup: the NCCL backend is not in this build (Debian's libtorch has no NCCL): "
                           "build the addon against a CUDA libtorch with LIBTORCH=/path MOCO_CXR_NCCL=1, or use "
                           "backend 'gloo'");
#endif
  } else if (backend != "gloo") {
    ThrowType(env, "initProcessGroup: backend must be 'gloo' or 'nccl', got '" + backend + "'");
  }
  auto group = std::make_shared<Group>();
  group->rank = rank;
  group->size = size;
  group->timeout = timeout;
  group->backend = backend;
  auto work = [=]() {
    c10::intrusive_ptr<c10d::Store> store;
    if (storeKind == "tcp") {
      c10d::TCPStoreOptions opts;
      opts.port = static_cast<std::uint16_t>(port);
      opts.isServer = isServer;
      opts.numWorkers = size;
      // As Python's TCPStore: each instance counts itself in under the store's
      // "init/" key, and the server waits until all have (Python's rank 0
      // blocks there until every client has counted in).
      opts.waitWorkers = true;
      opts.timeout = timeout;
      opts.multiTenant = true;
      try {
        store = c10::make_intrusive<c10d::TCPStore>(host, opts);
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string(isServer ? "could not serve" : "could not reach") +
                                 " the rendezvous store at " + host + ":" + std::to_string(port) + " (rank " +
                                 std::to_string(rank) + "): " + e.what());
      }
    } else {
      store = c10::make_intrusive<c10d::FileStore>(path, size);
    }
    store->setTimeout(timeout);
    if (!storePrefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(storePrefix, store);
    auto base = c10::make_intrusive<c10d::PrefixStore>("default_pg", store);
    auto groupStore = c10::make_intrusive<c10d::PrefixStore>("0", base);
    if (backend == "gloo") {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      if (!iface.empty()) {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
      } else if (!deviceHost.empty()) {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(deviceHost));
      } else {
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      options->threads = threads;
      group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(groupStore, rank, size, options);
    } else {
#ifdef MOCO_C10D_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(groupStore, rank, size, options);
#endif
    }
    StoreBarrier(*base, size, timeout);
    group->pg->setSequenceNumberForGroup();
    group->store = base;
  };
  return Run(env, work, [group](Napi::Env env) -> Napi::Value {
    return Napi::External<std::shared_ptr<Group>>::New(
        env, new std::shared_ptr<Group>(group), [](Napi::Env, std::shared_ptr<Group>* p) { delete p; });
  });
}

// destroyProcessGroup(handle): drops this handle's reference; the group closes
// once no collective in flight holds it.
Napi::Value DestroyProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) ThrowType(env, "destroyProcessGroup(handle)");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<Group>>>().Data();
  if (holder) holder->reset();
  return env.Undefined();
}

c10d::ReduceOp ParseOp(Napi::Env env, const std::string& op) {
  if (op == "sum" || op == "avg") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  ThrowType(env, "allreduce: op must be 'sum', 'avg', 'max', 'min' or 'product', got '" + op + "'");
}

// allreduce(handle, tensors, op, timeoutMs?) -> Promise<void>; in place. Gloo
// has no AVG: it sums and divides here, on the worker thread.
Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  auto tensors = TensorList(info[1], "allreduce: tensors");
  // Gloo reads several tensors as copies of one on several devices (and adds them up): one per call.
  if (tensors.size() != 1) ThrowType(env, "allreduce: give exactly one tensor (flatten several into one)");
  std::string op = info.Length() > 2 && info[2].IsString() ? std::string(info[2].As<Napi::String>()) : "sum";
  c10d::ReduceOp reduce = ParseOp(env, op);
  Millis timeout = TimeoutArg(info, 3, *group);
  return Run(env, [=]() mutable {
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce;
    opts.timeout = timeout;
    Await(group->pg->allreduce(tensors, opts), timeout, "allreduce");
    if (op == "avg") {
      at::NoGradGuard no_grad;
      for (auto& t : tensors) t.div_(group->size);
    }
  });
}

// broadcast(handle, tensors, root, timeoutMs?) -> Promise<void>; in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  auto tensors = TensorList(info[1], "broadcast: tensors");
  if (tensors.size() != 1) ThrowType(env, "broadcast: give exactly one tensor (flatten several into one)");
  if (info.Length() < 3 || !info[2].IsNumber()) ThrowType(env, "broadcast: root must be a rank number");
  int root = info[2].As<Napi::Number>().Int32Value();
  if (root < 0 || root >= group->size) {
    ThrowType(env, "broadcast: root " + std::to_string(root) + " is not a rank of this group of " +
                       std::to_string(group->size));
  }
  Millis timeout = TimeoutArg(info, 3, *group);
  return Run(env, [=]() mutable {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = timeout;
    Await(group->pg->broadcast(tensors, opts), timeout, "broadcast");
  });
}

// allgather(handle, input, outputs, timeoutMs?) -> Promise<void>: outputs[r]
// receives rank r's input (all the same shape and dtype).
Napi::Value Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  auto inputs = TensorList(info[1], "allgather: input");
  if (inputs.size() != 1) ThrowType(env, "allgather: give one input tensor");
  auto outputs = TensorList(info[2], "allgather: outputs");
  if (static_cast<int>(outputs.size()) != group->size) {
    ThrowType(env, "allgather: outputs must hold one tensor per rank (" + std::to_string(group->size) + "), got " +
                       std::to_string(outputs.size()));
  }
  for (const auto& t : outputs) {
    if (t.sizes() != inputs[0].sizes() || t.scalar_type() != inputs[0].scalar_type()) {
      ThrowType(env, "allgather: every output must have the input's shape and dtype");
    }
  }
  Millis timeout = TimeoutArg(info, 3, *group);
  return Run(env, [=]() mutable {
    std::vector<std::vector<at::Tensor>> out{outputs};
    c10d::AllgatherOptions opts;
    opts.timeout = timeout;
    Await(group->pg->allgather(out, inputs, opts), timeout, "allgather");
  });
}

// barrier(handle, timeoutMs?) -> Promise<void>
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  Millis timeout = TimeoutArg(info, 1, *group);
  return Run(env, [=]() {
    c10d::BarrierOptions opts;
    opts.timeout = timeout;
    Await(group->pg->barrier(opts), timeout, "barrier");
  });
}

// storeSet(handle, key, value) -> Promise<void>, under the group's "default_pg" store.
Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString()) ThrowType(env, "storeSet(key, value)");
  std::string key = info[1].As<Napi::String>();
  std::string value = info[2].As<Napi::String>();
  return Run(env, [=]() { group->store->set(key, std::vector<uint8_t>(value.begin(), value.end())); });
}

// storeCheck(handle, keys) -> Promise<boolean[]>: which keys are set now (no waiting).
Napi::Value StoreCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto group = GroupOf(info[0]);
  if (info.Length() < 2 || !info[1].IsArray()) ThrowType(env, "storeCheck(keys): keys must be an array of strings");
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < array.Length(); i++) {
    if (!array.Get(i).IsString()) ThrowType(env, "storeCheck: keys must be strings");
    keys.push_back(array.Get(i).As<Napi::String>());
  }
  auto found = std::make_shared<std::vector<bool>>();
  return Run(
      env,
      [=]() {
        for (const auto& key : keys) found->push_back(group->store->check({key}));
      },
      [found](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, found->size());
        for (size_t i = 0; i < found->size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Boolean::New(env, (*found)[i]));
        return out;
      });
}

}  // namespace

void InitDistributed(Napi::Env env, Napi::Object exports) {
  Napi::Object dist = Napi::Object::New(env);
  dist.Set("available", Napi::Boolean::New(env, true));
#ifdef MOCO_C10D_NCCL
  dist.Set("nccl", Napi::Boolean::New(env, true));
#else
  dist.Set("nccl", Napi::Boolean::New(env, false));
#endif
  dist.Set("initProcessGroup", Napi::Function::New(env, InitProcessGroup, "initProcessGroup"));
  dist.Set("destroyProcessGroup", Napi::Function::New(env, DestroyProcessGroup, "destroyProcessGroup"));
  dist.Set("allreduce", Napi::Function::New(env, Allreduce, "allreduce"));
  dist.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  dist.Set("allgather", Napi::Function::New(env, Allgather, "allgather"));
  dist.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  dist.Set("storeSet", Napi::Function::New(env, StoreSet, "storeSet"));
  dist.Set("storeCheck", Napi::Function::New(env, StoreCheck, "storeCheck"));
  InitGradReducer(env, dist);
  exports.Set("distributed", dist);
}

#else  // !MOCO_C10D

void InitDistributed(Napi::Env env, Napi::Object exports) {
  Napi::Object dist = Napi::Object::New(env);
  dist.Set("available", Napi::Boolean::New(env, false));
  dist.Set("nccl", Napi::Boolean::New(env, false));
  auto missing = [](const Napi::CallbackInfo& info) -> Napi::Value {
    throw Napi::Error::New(info.Env(),
                           "distributed training is not in this build of the addon: rebuild with c10d "
                           "(MOCO_CXR_C10D=1, and Gloo headers for the libtorch in use)");
  };
  for (const char* name : {"initProcessGroup", "destroyProcessGroup", "allreduce", "broadcast", "allgather",
                           "barrier", "storeSet", "storeCheck", "createGradReducer", "destroyGradReducer",
                           "reducerBackward"}) {
    dist.Set(name, Napi::Function::New(env, missing, name));
  }
  exports.Set("distributed", dist);
}

#endif

}  // namespace moco
