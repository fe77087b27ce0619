// Process-wide engine settings: threads, seeds, grad mode, and what this libtorch is.
#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
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

// Autocast (mixed precision) per device type. libtorch 2.4 replaced the
// per-device functions with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool AutocastEnabled(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
at::ScalarType AutocastDtype(bool cuda) { return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU); }
void SetAutocast(bool cuda, bool enabled, at::ScalarType dtype) {
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
}
#else
bool AutocastEnabled(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
at::ScalarType AutocastDtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void SetAutocast(bool cuda, bool enabled, at::ScalarType dtype) {
  if (cuda) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
}
#endif

// setAutocast(device: 'cpu' | 'cuda', enabled, dtypeCode) -> [previousEnabled, previousDtypeCode]
Napi::Value SetAutocastJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsNumber()) {
    ThrowType(env, "setAutocast(device, enabled, dtype): expected a device name, a boolean and a dtype code");
  }
  std::string device = info[0].As<Napi::String>();
  if (device != "cpu" && device != "cuda") ThrowType(env, "setAutocast: device must be 'cpu' or 'cuda'");
  int code = info[2].As<Napi::Number>().Int32Value();
  if (code != static_cast<int>(at::kBFloat16) && code != static_cast<int>(at::kHalf) &&
      code != static_cast<int>(at::kFloat)) {
    ThrowType(env, "setAutocast: dtype must be float16, bfloat16 or float32");
  }
  return Guard(env, [&]() -> Napi::Value {
    bool cuda = device == "cuda";
    Napi::Array previous = Napi::Array::New(env, 2);
    previous.Set(0u, Napi::Boolean::New(env, AutocastEnabled(cuda)));
    previous.Set(1u, Napi::Number::New(env, static_cast<int>(AutocastDtype(cuda))));
    SetAutocast(cuda, info[1].As<Napi::Boolean>().Value(), static_cast<at::ScalarType>(code));
    // Casts cached inside an autocast region are only valid within it.
    if (!AutocastEnabled(false) && !AutocastEnabled(true)) at::autocast::clear_cache();
    return previous;
  });
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
  exports.Set("setAutocast", Napi::Function::New(env, SetAutocastJs, "setAutocast"));
}

}  // namespace moco
