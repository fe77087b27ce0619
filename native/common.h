// Shared declarations of the addon: the tensor wrapper and the helpers every
// translation unit needs to turn libtorch failures into JavaScript errors.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <string>

namespace moco {

// The JavaScript face of one at::Tensor. The wrapper owns one reference to the
// tensor's implementation; dispose() drops it at once instead of waiting for the
// garbage collector, which never sees how large native tensors are.
class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Value Wrap(Napi::Env env, at::Tensor tensor);
  // Returns the tensor behind a JS value, or throws a TypeError naming `what`.
  static const at::Tensor& FromValue(const Napi::Value& value, const char* what);
  // The wrapper behind a JS value, or throws a TypeError naming `what`.
  static TensorHandle* HandleOf(const Napi::Value& value, const char* what);
  static bool IsHandle(const Napi::Value& value);
  // The wrapper behind a value made by this addon, or nullptr for anything else
  // (checked by a type tag, which costs less than instanceof and never throws).
  static TensorHandle* TryHandle(const Napi::Value& value);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const at::Tensor& tensor(Napi::Env env) const;

 private:
  void Release(Napi::Env env);

  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Strides(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value Dim(const Napi::CallbackInfo& info);
  Napi::Value IsContiguous(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value CopyBytesTo(const Napi::CallbackInfo& info);
  Napi::Value Item(const Napi::CallbackInfo& info);
  Napi::Value RequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value Grad(const Napi::CallbackInfo& info);
  Napi::Value SetGrad(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value RetainGrad(const Napi::CallbackInfo& info);
  Napi::Value IsLeaf(const Napi::CallbackInfo& info);
  Napi::Value GradFn(const Napi::CallbackInfo& info);
  Napi::Value StorageId(const Napi::CallbackInfo& info);
  Napi::Value Assign(const Napi::CallbackInfo& info);

  at::Tensor tensor_;
  bool disposed_ = false;
  int64_t accounted_ = 0;
};

// Per-environment state: the constructor used to wrap tensors made in C++.
struct AddonData {
  Napi::FunctionReference baseConstructor;    // TensorHandle itself
  Napi::FunctionReference tensorConstructor;  // the class tensors are made with (a subclass)
};

// Runs `body`, turning any C++ exception into a pending JavaScript exception so
// that no input can take the process down.
template <typename F>
Napi::Value Guard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  } catch (...) {
    throw Napi::Error::New(env, "unknown native error");
  }
}

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

std::string DeviceName(const c10::Device& device);
c10::Device ParseDevice(Napi::Env env, const std::string& text);

void InitTensor(Napi::Env env, Napi::Object exports);
void InitDispatch(Napi::Env env, Napi::Object exports);
void InitRuntime(Napi::Env env, Napi::Object exports);

}  // namespace moco
