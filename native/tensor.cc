// The tensor wrapper: lifetime, metadata, data out, and the autograd entry points.
#include "common.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <algorithm>
#include <cstring>

namespace moco {

namespace {

// What a wrapper reports to V8 as external memory. A broadcast view (expand)
// may span far more elements than its storage holds; counting those phantom
// bytes sends V8 into back-to-back garbage collections.
int64_t ByteSize(const at::Tensor& t) {
  if (!t.defined()) return 0;
  auto bytes = static_cast<int64_t>(t.numel() * t.element_size());
  if (t.has_storage()) bytes = std::min(bytes, static_cast<int64_t>(t.storage().nbytes()));
  return bytes;
}

Napi::Array ToArray(Napi::Env env, c10::IntArrayRef values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(values[i])));
  }
  return out;
}

}  // namespace

std::string DeviceName(const c10::Device& device) { return device.str(); }

c10::Device ParseDevice(Napi::Env env, const std::string& text) {
  try {
    return c10::Device(text);
  } catch (const c10::Error&) {
    ThrowType(env, "invalid device '" + text + "': expected 'cpu', 'cuda' or 'cuda:N'");
  }
}

const int64_t TensorHandle::kMarker = 0;

void TensorHandle::Attach(v8::Isolate* isolate, v8::Local<v8::Object> object) {
  object->SetAlignedPointerInInternalField(kRecordField, this);
  object->SetAlignedPointerInInternalField(kMarkerField, const_cast<int64_t*>(&kMarker));
  self_.Reset(isolate, object);
  self_.SetWeak(this, OnCollected, v8::WeakCallbackType::kParameter);
}

// Runs inside the collector, so it touches no JavaScript: the bytes are left for
// the next ordinary call to report.
void TensorHandle::OnCollected(const v8::WeakCallbackInfo<TensorHandle>& info) {
  TensorHandle* handle = info.GetParameter();
  handle->self_.Reset();
  if (!handle->disposed_) handle->data_->unreported -= handle->accounted_;
  delete handle;
}

// `new TensorHandle()` (through the TypeScript subclass's super()) makes an
// empty tensor object; results of operators are made by Make without it.
void TensorHandle::Construct(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (!info.IsConstructCall()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "TensorHandle is a class: call it with new")));
    return;
  }
  auto* data = static_cast<AddonData*>(info.Data().As<v8::External>()->Value());
  (new TensorHandle(data))->Attach(isolate, info.This());
}

void TensorHandle::ThrowUnusable(Napi::Env env) const {
  if (disposed_) throw Napi::Error::New(env, "Tensor is disposed: it was freed by dispose() or by a tidy() scope");
  throw Napi::Error::New(env, "Tensor is empty: make tensors with the torch functions, not with new Tensor()");
}

void TensorHandle::Release() {
  if (disposed_) return;
  disposed_ = true;
  tensor_ = at::Tensor();
  data_->Account(-accounted_);
  accounted_ = 0;
}

void TensorHandle::Reset(at::Tensor tensor) {
  Release();
  disposed_ = false;
  accounted_ = ByteSize(tensor);
  tensor_ = std::move(tensor);
  data_->Account(accounted_);
}

v8::Local<v8::Value> TensorHandle::Make(AddonData* data, v8::Local<v8::Context> context, at::Tensor tensor) {
  v8::Isolate* isolate = data->isolate;
  if (!tensor.defined()) return v8::Null(isolate);
  v8::Local<v8::Object> object;
  if (!data->resultInstances.Get(isolate)->NewInstance(context).ToLocal(&object)) throw PendingJsException();
  auto* handle = new TensorHandle(data);
  handle->Attach(isolate, object);
  handle->accounted_ = ByteSize(tensor);
  handle->tensor_ = std::move(tensor);
  data->Account(handle->accounted_);
  return object;
}

Napi::Value TensorHandle::Wrap(Napi::Env env, at::Tensor tensor) {
  AddonData* data = env.GetInstanceData<AddonData>();
  return Napi::Value(env, ToNapi(Make(data, data->isolate->GetCurrentContext(), std::move(tensor))));
}

bool TensorHandle::IsHandle(const Napi::Value& value) {
  if (!value.IsObject()) return false;
  AddonData* data = value.Env().GetInstanceData<AddonData>();
  v8::Isolate* isolate = data->isolate;
  v8::Maybe<bool> is = ToV8(value).As<v8::Object>()->InstanceOf(isolate->GetCurrentContext(),
                                                                 data->baseConstructor.Get(isolate));
  return is.FromMaybe(false);
}

TensorHandle* TensorHandle::HandleOf(const Napi::Value& value, const char* what) {
  if (TensorHandle* handle = TryHandle(value)) return handle;
  // Not an object this addon made: the checks below say which kind of mistake it is.
  Napi::Env env = value.Env();
  if (!IsHandle(value)) ThrowType(env, std::string(what) + ": expected a Tensor");
  // An object made with Object.create(Tensor.prototype) passes the instanceof
  // test but carries no record.
  ThrowType(env, std::string(what) + ": expected a Tensor made by the torch functions");
}

const at::Tensor& TensorHandle::FromValue(const Napi::Value& value, const char* what) {
  return HandleOf(value, what)->tensor(value.Env());
}

namespace {

// The record behind `this` of a method call.
TensorHandle* Self(const Napi::CallbackInfo& info) { return TensorHandle::HandleOf(info.This(), "this"); }

}  // namespace

// dispose() runs once per tensor, so it skips Node-API. On anything but a tensor
// object there is nothing to free and it does nothing.
void DisposeMethod(const v8::FunctionCallbackInfo<v8::Value>& info) {
  if (TensorHandle* handle = TensorHandle::TryHandle(info.This())) handle->Release();
}

Napi::Value IsDisposedMethod(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Self(info)->disposed());
}

Napi::Value ShapeMethod(const Napi::CallbackInfo& info) {
  return ToArray(info.Env(), Self(info)->tensor(info.Env()).sizes());
}

Napi::Value StridesMethod(const Napi::CallbackInfo& info) {
  return ToArray(info.Env(), Self(info)->tensor(info.Env()).strides());
}

Napi::Value DTypeMethod(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<int>(Self(info)->tensor(info.Env()).scalar_type()));
}

Napi::Value DeviceMethod(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DeviceName(Self(info)->tensor(info.Env()).device()));
}

Napi::Value NumelMethod(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Self(info)->tensor(info.Env()).numel()));
}

Napi::Value DimMethod(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Self(info)->tensor(info.Env()).dim()));
}

Napi::Value IsContiguousMethod(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Self(info)->tensor(info.Env()).is_contiguous());
}

// A copy of the elements, in row-major order, as raw bytes; the TypeScript side
// views them through the typed array that matches the dtype.
Napi::Value BytesMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    at::Tensor t = Self(info)->tensor(env).detach().to(at::kCPU).contiguous();
    size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, n);
    if (n > 0) std::memcpy(buffer.Data(), t.data_ptr(), n);
    return buffer;
  });
}

// Copies the element bytes [offset, offset + target.byteLength) of a contiguous
// CPU tensor into `target` (fewer at the end) and returns how many it copied.
// A writer can stream a large tensor through one reusable buffer this way,
// where `_bytes` would allocate a copy of the whole tensor.
Napi::Value CopyBytesToMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) {
      ThrowType(env, "_copyBytesTo(target, offset): expected a Uint8Array and a byte offset");
    }
    Napi::TypedArray target = info[0].As<Napi::TypedArray>();
    const at::Tensor& t = Self(info)->tensor(env);
    if (!t.device().is_cpu() || !t.is_contiguous()) {
      throw Napi::Error::New(env, "_copyBytesTo: the tensor must be a contiguous CPU tensor");
    }
    int64_t total = t.numel() * static_cast<int64_t>(t.element_size());
    int64_t offset = info[1].As<Napi::Number>().Int64Value();
    if (offset < 0 || offset > total) {
      throw Napi::RangeError::New(env, "_copyBytesTo: offset " + std::to_string(offset) + " is outside the " +
                                           std::to_string(total) + " bytes of the tensor");
    }
    int64_t n = std::min<int64_t>(static_cast<int64_t>(target.ByteLength()), total - offset);
    uint8_t* dst = static_cast<uint8_t*>(target.ArrayBuffer().Data()) + target.ByteOffset();
    if (n > 0) std::memcpy(dst, static_cast<const uint8_t*>(t.data_ptr()) + offset, static_cast<size_t>(n));
    return Napi::Number::New(env, static_cast<double>(n));
  });
}

Napi::Value ItemMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const at::Tensor& t = Self(info)->tensor(env);
    if (t.numel() != 1) {
      throw Napi::Error::New(env, "item() needs a tensor with exactly one element, got " +
                                      std::to_string(t.numel()));
    }
    if (t.scalar_type() == at::kBool) return Napi::Boolean::New(env, t.item<bool>());
    return Napi::Number::New(env, t.item<double>());
  });
}

Napi::Value RequiresGradMethod(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Self(info)->tensor(info.Env()).requires_grad());
}

Napi::Value SetRequiresGradMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) ThrowType(env, "requiresGrad: expected a boolean");
  bool flag = info[0].As<Napi::Boolean>();
  return Guard(env, [&]() -> Napi::Value {
    // requires_grad_ is a method of the tensor object itself, so every wrapper of
    // this implementation sees the change.
    const_cast<at::Tensor&>(Self(info)->tensor(env)).requires_grad_(flag);
    return env.Undefined();
  });
}

Napi::Value GradMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return TensorHandle::Wrap(env, Self(info)->tensor(env).grad()); });
}

Napi::Value SetGradMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    at::Tensor& self = const_cast<at::Tensor&>(Self(info)->tensor(env));
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
      self.mutable_grad().reset();
    } else {
      // The same checks as PyTorch's setter: a mismatched gradient would only
      // fail later, inside backward() or an optimizer step.
      const at::Tensor& grad = TensorHandle::FromValue(info[0], "grad");
      if (grad.is_same(self)) ThrowType(env, "grad: a tensor cannot be its own gradient");
      if (grad.scalar_type() != self.scalar_type()) {
        ThrowType(env, std::string("grad: assigned gradient has dtype ") + c10::toString(grad.scalar_type()) +
                           " but the tensor has " + c10::toString(self.scalar_type()));
      }
      if (grad.device() != self.device()) {
        ThrowType(env, "grad: assigned gradient is on " + DeviceName(grad.device()) + " but the tensor is on " +
                           DeviceName(self.device()));
      }
      if (!grad.sizes().equals(self.sizes())) {
        ThrowType(env, "grad: assigned gradient has shape " + c10::str(grad.sizes()) + " but the tensor has shape " +
                           c10::str(self.sizes()));
      }
      self.mutable_grad() = grad;
    }
    return env.Undefined();
  });
}

Napi::Value BackwardMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const at::Tensor& self = Self(info)->tensor(env);
    std::vector<at::Tensor> grads;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
      grads.push_back(TensorHandle::FromValue(info[0], "backward(gradient)"));
    }
    bool retain = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    bool create = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    torch::autograd::backward({self}, grads, retain ? c10::optional<bool>(true) : c10::nullopt, create);
    return env.Undefined();
  });
}

Napi::Value RetainGradMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Self(info)->tensor(env).retain_grad();
    return env.Undefined();
  });
}

Napi::Value IsLeafMethod(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Self(info)->tensor(info.Env()).is_leaf());
}

Napi::Value GradFnMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& fn = Self(info)->tensor(env).grad_fn();
  if (!fn) return env.Null();
  return Napi::String::New(env, fn->name());
}

// Identifies the storage so that TypeScript can tell views of one tensor apart
// from copies (checkpoint writers share storages the way PyTorch does).
Napi::Value StorageIdMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = Self(info)->tensor(env);
  if (!t.has_storage()) return env.Null();
  auto id = reinterpret_cast<uintptr_t>(t.storage().unsafeGetStorageImpl());
  return Napi::Number::New(env, static_cast<double>(id));
}

// Points this wrapper at another tensor, taking over its reference (the source
// wrapper is disposed). Lets a module swap a parameter's value in place.
Napi::Value AssignMethod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorHandle* self = Self(info);
  if (info.Length() < 1) ThrowType(env, "assign: expected a Tensor");
  TensorHandle* other = TensorHandle::HandleOf(info[0], "assign");
  at::Tensor value = other->tensor(env);
  if (other != self) other->Release();
  self->Reset(std::move(value));
  return env.Undefined();
}

// Makes a tensor from raw little-endian bytes: a fresh storage of `storageNumel`
// elements, viewed with the given size, stride and offset (as PyTorch files lay
// tensors out). The bytes are copied, so the caller may reuse its buffer.
static Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 3 || !info[0].IsTypedArray()) {
      ThrowType(env, "fromBytes(bytes, dtype, shape[, strides, offset]): bytes must be a typed array");
    }
    Napi::TypedArray bytes = info[0].As<Napi::TypedArray>();
    if (!info[1].IsNumber()) ThrowType(env, "fromBytes: dtype must be a number");
    auto dtype = static_cast<at::ScalarType>(info[1].As<Napi::Number>().Int32Value());
    if (!info[2].IsArray()) ThrowType(env, "fromBytes: shape must be an array of integers");
    auto readInts = [&](Napi::Array a, const char* what) {
      std::vector<int64_t> out(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        if (!v.IsNumber()) ThrowType(env, std::string("fromBytes: ") + what + " must hold integers");
        double d = v.As<Napi::Number>().DoubleValue();
        if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d))) {
          ThrowType(env, std::string("fromBytes: ") + what + " must hold non-negative integers");
        }
        out[i] = static_cast<int64_t>(d);
      }
      return out;
    };
    std::vector<int64_t> shape = readInts(info[2].As<Napi::Array>(), "shape");
    size_t itemSize = c10::elementSize(dtype);
    size_t byteLength = bytes.ByteLength();
    if (byteLength % itemSize != 0) {
      throw Napi::Error::New(env, "fromBytes: " + std::to_string(byteLength) + " bytes is not a whole number of " +
                                      std::to_string(itemSize) + "-byte elements");
    }
    int64_t storageNumel = static_cast<int64_t>(byteLength / itemSize);
    const uint8_t* src = static_cast<const uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
    at::Tensor storage = at::empty({storageNumel}, at::TensorOptions().dtype(dtype));
    if (byteLength > 0) std::memcpy(storage.data_ptr(), src, byteLength);
    if (info.Length() > 3 && info[3].IsArray()) {
      std::vector<int64_t> strides = readInts(info[3].As<Napi::Array>(), "strides");
      int64_t offset = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int64Value() : 0;
      if (strides.size() != shape.size()) throw Napi::Error::New(env, "fromBytes: strides and shape differ in length");
      int64_t last = offset;
      for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 0) { last = -1; break; }
        last += (shape[i] - 1) * strides[i];
      }
      if (last >= storageNumel) {
        throw Napi::Error::New(env, "fromBytes: the view reaches element " + std::to_string(last) +
                                        " but the storage holds " + std::to_string(storageNumel));
      }
      return TensorHandle::Wrap(env, storage.as_strided(shape, strides, offset).clone(at::MemoryFormat::Preserve));
    }
    int64_t expected = c10::multiply_integers(shape);
    if (expected != storageNumel) {
      throw Napi::Error::New(env, "fromBytes: shape holds " + std::to_string(expected) + " elements but " +
                                      std::to_string(storageNumel) + " were given");
    }
    return TensorHandle::Wrap(env, storage.view(shape));
  });
}

// The TypeScript Tensor class extends TensorHandle. Objects made in C++ are
// instances of a hidden class whose prototype is set here to the Tensor class's
// prototype, so that they are Tensors without running its constructor.
static Napi::Value SetTensorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(env, "setTensorClass: expected a constructor");
  Napi::Value prototype = info[0].As<Napi::Function>().Get("prototype");
  if (!prototype.IsObject()) ThrowType(env, "setTensorClass: the constructor has no prototype object");
  AddonData* data = env.GetInstanceData<AddonData>();
  v8::Isolate* isolate = data->isolate;
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::Local<v8::Function> results;
  if (!data->results.Get(isolate)->GetFunction(context).ToLocal(&results) ||
      results->Set(context, v8::String::NewFromUtf8Literal(isolate, "prototype"), ToV8(prototype)).IsNothing()) {
    throw Napi::Error::New(env);
  }
  return env.Undefined();
}

v8::Local<v8::Function> TensorHandle::Define(Napi::Env env, AddonData* data) {
  v8::Isolate* isolate = data->isolate;
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::Local<v8::External> external = v8::External::New(isolate, data);
  v8::Local<v8::FunctionTemplate> base = v8::FunctionTemplate::New(isolate, Construct, external);
  base->SetClassName(v8::String::NewFromUtf8Literal(isolate, "TensorHandle"));
  base->InstanceTemplate()->SetInternalFieldCount(kFieldCount);
  base->PrototypeTemplate()->Set(
      v8::String::NewFromUtf8Literal(isolate, "dispose"),
      v8::FunctionTemplate::New(isolate, DisposeMethod, external, v8::Local<v8::Signature>(), 0,
                                v8::ConstructorBehavior::kThrow),
      v8::DontEnum);
  // The hidden class of results: same fields, and a prototype chain that
  // setTensorClass points at the TypeScript class (TensorHandle's until then).
  v8::Local<v8::FunctionTemplate> results = v8::FunctionTemplate::New(isolate);
  results->SetClassName(v8::String::NewFromUtf8Literal(isolate, "Tensor"));
  results->InstanceTemplate()->SetInternalFieldCount(kFieldCount);
  results->Inherit(base);
  data->results.Reset(isolate, results);
  data->resultInstances.Reset(isolate, results->InstanceTemplate());
  v8::Local<v8::Function> constructor = base->GetFunction(context).ToLocalChecked();
  data->baseConstructor.Reset(isolate, constructor);

  Napi::Object prototype = Napi::Value(env, ToNapi(constructor)).As<Napi::Object>().Get("prototype").As<Napi::Object>();
  // Writable and configurable, as a JavaScript class's methods are.
  auto method = [&](const char* name, Napi::Function::Callback cb) {
    return Napi::PropertyDescriptor::Function(env, prototype, name, cb,
                                              static_cast<napi_property_attributes>(napi_writable | napi_configurable));
  };
  prototype.DefineProperties({
      method("_isDisposed", IsDisposedMethod),
      method("_shape", ShapeMethod),
      method("_strides", StridesMethod),
      method("_dtype", DTypeMethod),
      method("_device", DeviceMethod),
      method("_numel", NumelMethod),
      method("_dim", DimMethod),
      method("_isContiguous", IsContiguousMethod),
      method("_bytes", BytesMethod),
      method("_copyBytesTo", CopyBytesToMethod),
      method("_item", ItemMethod),
      method("_requiresGrad", RequiresGradMethod),
      method("_setRequiresGrad", SetRequiresGradMethod),
      method("_grad", GradMethod),
      method("_setGrad", SetGradMethod),
      method("_backward", BackwardMethod),
      method("_retainGrad", RetainGradMethod),
      method("_isLeaf", IsLeafMethod),
      method("_gradFn", GradFnMethod),
      method("_storageId", StorageIdMethod),
      method("_assign", AssignMethod),
  });
  return constructor;
}

void InitTensor(Napi::Env env, Napi::Object exports) {
  AddonData* data = env.GetInstanceData<AddonData>();
  v8::Local<v8::Function> constructor = TensorHandle::Define(env, data);
  exports.Set("TensorHandle", Napi::Value(env, ToNapi(constructor)));
  exports.Set("setTensorClass", Napi::Function::New(env, SetTensorClass, "setTensorClass"));
  exports.Set("fromBytes", Napi::Function::New(env, FromBytes, "fromBytes"));
}

}  // namespace moco
