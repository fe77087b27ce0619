// What the c10d parts of the addon share: a joined process group and the
// promise that work on a libuv worker thread settles. Collectives
// (distributed.cc) and the gradient reducer (grad_reducer.cc) both run off the
// JavaScript thread through Run(), so that the event loop keeps turning while a
// rank waits for its peers.
#pragma once

#ifdef MOCO_C10D

#include "common.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace moco {
namespace c10dgroup {

using Millis = std::chrono::milliseconds;

// One joined group: its store (kept for the failure protocol of the TypeScript
// layer) and the process group itself.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;  // the "default_pg" store
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  int rank = 0;
  int size = 1;
  Millis timeout{0};
  std::string backend;
};

// A promise settled by work done on a worker thread. `work` runs off the JS
// thread and must not touch JavaScript values; `done` builds the result on it.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        done_(std::move(done)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

inline Napi::Promise Run(Napi::Env env, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> done = nullptr) {
  auto* worker = new PromiseWorker(env, std::move(work), std::move(done));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

inline std::shared_ptr<Group> GroupOf(const Napi::Value& value) {
  if (!value.IsExternal()) ThrowType(value.Env(), "expected a process group handle");
  auto* holder = value.As<Napi::External<std::shared_ptr<Group>>>().Data();
  if (!holder || !*holder) ThrowType(value.Env(), "the process group was destroyed");
  return *holder;
}

}  // namespace c10dgroup
}  // namespace moco

#endif  // MOCO_C10D
