// Process-wide engine settings: threads, seeds, grad mode, and what this libtorch is.
#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

namespace moco {

namespace {

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowType(env, "setNumThreads(n): n must be a number");
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) ThrowType(env, "setNumThreads(n): n must be at least 1, got " + std::to_string(n));
  return Guard(env, [&]() -> Napi::Value {
    at::set_num_threads(n);
    return env.Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowType(env, "manualSeed(seed): seed must be a number");
  double seed = info[0].As<Napi::Number>().DoubleValue();
  if (seed < 0 || seed != static_cast<double>(static_cast<uint64_t>(seed))) {
    ThrowType(env, "manualSeed(seed): seed must be a non-negative integer");
  }
  return Guard(env, [&]() -> Napi::Value {
    torch::manual_seed(static_cast<uint64_t>(seed));
    return env.Undefined();
  });
}

// Returns the previous setting so that a scope can restore it.
Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) ThrowType(env, "setGradEnabled(flag): flag must be a boolean");
  bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(env, previous);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object out = Napi::Object::New(env);
    out.Set("version", TORCH_VERSION);
    out.Set("config", at::show_config());
    out.Set("parallel", at::get_parallel_info());
    out.Set("cudaCompiled", at::hasCUDA());
    out.Set("cudaAvailable", torch::cuda::is_available());
    out.Set("cudaDeviceCount", static_cast<double>(torch::cuda::device_count()));
    out.Set("cudnnAvailable", torch::cuda::cudnn_is_available());
    out.Set("mkldnn", at::hasMKLDNN());
    out.Set("mkl", at::hasMKL());
    out.Set("openmp", at::hasOpenMP());
    out.Set("lapack", at::hasLAPACK());
    out.Set("threads", at::get_num_threads());
    out.Set("interopThreads", at::get_num_interop_threads());
    return out;
  });
}

}  // namespace

void InitRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed, "manualSeed"));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled, "setGradEnabled"));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled, "isGradEnabled"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
}

}  // namespace moco
