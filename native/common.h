// Shared declarations of the addon: the tensor wrapper and the helpers every
// translation unit needs to turn libtorch failures into JavaScript errors.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <cstring>
#include <string>

#include <v8.h>

namespace moco {

// Node-API values and V8 handles are the same pointer in Node's implementation
// (napi_value is a v8::Local<v8::Value> in disguise). The per-operator path is
// written against V8 directly, where each Node-API call would add its own
// checks and bookkeeping; the rest of the addon stays on Node-API.
static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value must be a V8 handle");
inline v8::Local<v8::Value> ToV8(napi_value value) {
  v8::Local<v8::Value> local;
  std::memcpy(static_cast<void*>(&local), &value, sizeof(value));
  return local;
}
inline napi_value ToNapi(v8::Local<v8::Value> local) {
  napi_value value;
  std::memcpy(&value, static_cast<void*>(&local), sizeof(value));
  return value;
}

struct AddonData;

// The native record behind one JavaScript tensor object. The object carries it
// in internal field 0 and a marker in field 1, so that recognising a tensor is
// two loads and a pointer compare. The record owns one reference to the
// tensor's implementation; dispose() drops it at once instead of waiting for the
// garbage collector, which never sees how large native tensors are. The record
// itself is freed by a weak callback when the object is collected.
class TensorHandle {
 public:
  // Makes the TensorHandle class (the base of the TypeScript Tensor class).
  static v8::Local<v8::Function> Define(Napi::Env env, AddonData* data);
  // A new tensor object for `tensor` (null for an undefined tensor), made
  // without running any JavaScript: its prototype is the TypeScript class's.
  static v8::Local<v8::Value> Make(AddonData* data, v8::Local<v8::Context> context, at::Tensor tensor);
  static Napi::Value Wrap(Napi::Env env, at::Tensor tensor);
  // Returns the tensor behind a JS value, or throws a TypeError naming `what`.
  static const at::Tensor& FromValue(const Napi::Value& value, const char* what);
  // The record behind a JS value, or throws a TypeError naming `what`.
  static TensorHandle* HandleOf(const Napi::Value& value, const char* what);
  static bool IsHandle(const Napi::Value& value);
  // The record behind an object made by this addon, or nullptr for anything else.
  static TensorHandle* TryHandle(v8::Local<v8::Value> value) {
    if (!value->IsObject()) return nullptr;
    v8::Object* object = v8::Object::Cast(*value);
    if (object->InternalFieldCount() != kFieldCount) return nullptr;
    if (object->GetAlignedPointerFromInternalField(kMarkerField) != &kMarker) return nullptr;
    return static_cast<TensorHandle*>(object->GetAlignedPointerFromInternalField(kRecordField));
  }
  static TensorHandle* TryHandle(const Napi::Value& value) { return TryHandle(ToV8(value)); }

  // The tensor, or throws if it was disposed or never set.
  const at::Tensor& tensor(Napi::Env env) const {
    if (C10_UNLIKELY(disposed_ || !tensor_.defined())) ThrowUnusable(env);
    return tensor_;
  }
  bool disposed() const { return disposed_; }
  void Release();
  // Points this record at another tensor (used by assign).
  void Reset(at::Tensor tensor);

  static constexpr int kFieldCount = 2;
  static constexpr int kRecordField = 0;
  static constexpr int kMarkerField = 1;
  static const int64_t kMarker;  // its address is the marker (V8 wants an aligned pointer)

 private:
  explicit TensorHandle(AddonData* data) : data_(data) {}
  void Attach(v8::Isolate* isolate, v8::Local<v8::Object> object);
  static void OnCollected(const v8::WeakCallbackInfo<TensorHandle>& info);
  static void Construct(const v8::FunctionCallbackInfo<v8::Value>& info);
  [[noreturn]] void ThrowUnusable(Napi::Env env) const;

  at::Tensor tensor_;
  v8::Global<v8::Object> self_;
  AddonData* data_;
  int64_t accounted_ = 0;
  bool disposed_ = false;
};

// Per-environment state. It is never freed: weak callbacks of tensor objects
// may run after the environment's clean-up and still reach it.
struct AddonData {
  napi_env env = nullptr;
  v8::Isolate* isolate = nullptr;
  v8::Global<v8::Function> baseConstructor;     // TensorHandle itself
  v8::Global<v8::FunctionTemplate> results;     // makes result objects (its prototype is set by setTensorClass)
  v8::Global<v8::ObjectTemplate> resultInstances;
  // Bytes of tensors made or freed but not yet reported to V8. Reporting costs
  // a call into V8 per tensor; reporting in chunks keeps the collector's view
  // within one chunk of the truth at a fraction of the cost.
  int64_t unreported = 0;
  static constexpr int64_t kReportChunk = int64_t{1} << 20;
  void Account(int64_t delta) {
    unreported += delta;
    if (unreported >= kReportChunk || unreported <= -kReportChunk) {
      isolate->AdjustAmountOfExternalAllocatedMemory(unreported);
      unreported = 0;
    }
  }
};

// Thrown inside a V8 callback when V8 itself already holds a pending exception.
struct PendingJsException {};

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
  } catch (const PendingJsException&) {
    throw Napi::Error::New(env);
  } catch (...) {
    throw Napi::Error::New(env, "unknown native error");
  }
}

// The same for a callback written against V8: the error becomes the pending
// JavaScript exception of the call.
template <typename F>
void GuardV8(v8::Isolate* isolate, F&& body) {
  try {
    body();
  } catch (const Napi::Error& e) {
    isolate->ThrowException(ToV8(e.Value()));
  } catch (const PendingJsException&) {
    // already pending in V8
  } catch (const c10::Error& e) {
    isolate->ThrowException(v8::Exception::Error(
        v8::String::NewFromUtf8(isolate, e.what_without_backtrace()).ToLocalChecked()));
  } catch (const std::exception& e) {
    isolate->ThrowException(v8::Exception::Error(v8::String::NewFromUtf8(isolate, e.what()).ToLocalChecked()));
  } catch (...) {
    isolate->ThrowException(
        v8::Exception::Error(v8::String::NewFromUtf8(isolate, "unknown native error").ToLocalChecked()));
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
