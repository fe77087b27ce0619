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

// Marks every wrapper this addon constructs, so that an argument is recognised
// by one tag check rather than an instanceof walk (and never confused with an
// object another addon wraps).
const napi_type_tag kTensorTag = {0x6d6f636f2d637872ULL, 0x54656e736f724831ULL};

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

Napi::Function TensorHandle::Define(Napi::Env env) {
  return DefineClass(
      env, "TensorHandle",
      {
          InstanceMethod("dispose", &TensorHandle::Dispose),
          InstanceMethod("_isDisposed", &TensorHandle::IsDisposed),
          InstanceMethod("_shape", &TensorHandle::Shape),
          InstanceMethod("_strides", &TensorHandle::Strides),
          InstanceMethod("_dtype", &TensorHandle::DType),
          InstanceMethod("_device", &TensorHandle::Device),
          InstanceMethod("_numel", &TensorHandle::Numel),
          InstanceMethod("_dim", &TensorHandle::Dim),
          InstanceMethod("_isContiguous", &TensorHandle::IsContiguous),
          InstanceMethod("_bytes", &TensorHandle::Bytes),
          InstanceMethod("_copyBytesTo", &TensorHandle::CopyBytesTo),
          InstanceMethod("_item", &TensorHandle::Item),
          InstanceMethod("_requiresGrad", &TensorHandle::RequiresGrad),
          InstanceMethod("_setRequiresGrad", &TensorHandle::SetRequiresGrad),
          InstanceMethod("_grad", &TensorHandle::Grad),
          InstanceMethod("_setGrad", &TensorHandle::SetGrad),
          InstanceMethod("_backward", &TensorHandle::Backward),
          InstanceMethod("_retainGrad", &TensorHandle::RetainGrad),
          InstanceMethod("_isLeaf", &TensorHandle::IsLeaf),
          InstanceMethod("_gradFn", &TensorHandle::GradFn),
          InstanceMethod("_storageId", &TensorHandle::StorageId),
          InstanceMethod("_assign", &TensorHandle::Assign),
      });
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  napi_type_tag_object(info.Env(), info.This(), &kTensorTag);
}

TensorHandle::~TensorHandle() {
  // Finalizers may run without a usable environment for JS calls, but adjusting
  // the external memory counter is allowed there.
  if (!disposed_ && accounted_ != 0) {
    int64_t ignored = 0;
    napi_adjust_external_memory(Env(), -accounted_, &ignored);
  }
}

void TensorHandle::Release(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  tensor_ = at::Tensor();
  if (accounted_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
    accounted_ = 0;
  }
}

Napi::Value TensorHandle::Wrap(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object object = data->tensorConstructor.New({});
  TensorHandle* handle = TensorHandle::Unwrap(object);
  handle->accounted_ = ByteSize(tensor);
  handle->tensor_ = std::move(tensor);
  if (handle->accounted_ != 0) Napi::MemoryManagement::AdjustExternalMemory(env, handle->accounted_);
  return object;
}

bool TensorHandle::IsHandle(const Napi::Value& value) {
  if (!value.IsObject()) return false;
  AddonData* data = value.Env().GetInstanceData<AddonData>();
  return value.As<Napi::Object>().InstanceOf(data->baseConstructor.Value());
}

TensorHandle* TensorHandle::TryHandle(const Napi::Value& value) {
  // The tag check converts its argument to an object, which throws for null and
  // undefined: anything but an object is answered here.
  if (!value.IsObject()) return nullptr;
  napi_env env = value.Env();
  bool tagged = false;
  if (napi_check_object_type_tag(env, value, &kTensorTag, &tagged) != napi_ok || !tagged) return nullptr;
  void* unwrapped = nullptr;
  if (napi_unwrap(env, value, &unwrapped) != napi_ok) return nullptr;
  return static_cast<TensorHandle*>(unwrapped);
}

TensorHandle* TensorHandle::HandleOf(const Napi::Value& value, const char* what) {
  if (TensorHandle* handle = TryHandle(value)) return handle;
  // Not a wrapper this addon made: the checks below say which kind of mistake it is.
  Napi::Env env = value.Env();
  if (!IsHandle(value)) ThrowType(env, std::string(what) + ": expected a Tensor");
  // An object made with Object.create(Tensor.prototype) passes the instanceof
  // test but wraps nothing.
  void* unwrapped = nullptr;
  if (napi_unwrap(env, value, &unwrapped) != napi_ok || unwrapped == nullptr) {
    ThrowType(env, std::string(what) + ": expected a Tensor made by the torch functions");
  }
  return static_cast<TensorHandle*>(unwrapped);
}

const at::Tensor& TensorHandle::FromValue(const Napi::Value& value, const char* what) {
  return HandleOf(value, what)->tensor(value.Env());
}

const at::Tensor& TensorHandle::tensor(Napi::Env env) const {
  if (disposed_) throw Napi::Error::New(env, "Tensor is disposed: it was freed by dispose() or by a tidy() scope");
  if (!tensor_.defined()) throw Napi::Error::New(env, "Tensor is empty: make tensors with the torch functions, not with new Tensor()");
  return tensor_;
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

Napi::Value TensorHandle::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

Napi::Value TensorHandle::Shape(const Napi::CallbackInfo& info) {
  return ToArray(info.Env(), tensor(info.Env()).sizes());
}

Napi::Value TensorHandle::Strides(const Napi::CallbackInfo& info) {
  return ToArray(info.Env(), tensor(info.Env()).strides());
}

Napi::Value TensorHandle::DType(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<int>(tensor(info.Env()).scalar_type()));
}

Napi::Value TensorHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DeviceName(tensor(info.Env()).device()));
}

Napi::Value TensorHandle::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tensor(info.Env()).numel()));
}

Napi::Value TensorHandle::Dim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tensor(info.Env()).dim()));
}

Napi::Value TensorHandle::IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).is_contiguous());
}

// A copy of the elements, in row-major order, as raw bytes; the TypeScript side
// views them through the typed array that matches the dtype.
Napi::Value TensorHandle::Bytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    at::Tensor t = tensor(env).detach().to(at::kCPU).contiguous();
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
Napi::Value TensorHandle::CopyBytesTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) {
      ThrowType(env, "_copyBytesTo(target, offset): expected a Uint8Array and a byte offset");
    }
    Napi::TypedArray target = info[0].As<Napi::TypedArray>();
    const at::Tensor& t = tensor(env);
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

Napi::Value TensorHandle::Item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const at::Tensor& t = tensor(env);
    if (t.numel() != 1) {
      throw Napi::Error::New(env, "item() needs a tensor with exactly one element, got " +
                                      std::to_string(t.numel()));
    }
    if (t.scalar_type() == at::kBool) return Napi::Boolean::New(env, t.item<bool>());
    return Napi::Number::New(env, t.item<double>());
  });
}

Napi::Value TensorHandle::RequiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).requires_grad());
}

Napi::Value TensorHandle::SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) ThrowType(env, "requiresGrad: expected a boolean");
  bool flag = info[0].As<Napi::Boolean>();
  return Guard(env, [&]() -> Napi::Value {
    // requires_grad_ is a method of the tensor object itself, so every wrapper of
    // this implementation sees the change.
    const_cast<at::Tensor&>(tensor(env)).requires_grad_(flag);
    return env.Undefined();
  });
}

Napi::Value TensorHandle::Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Wrap(env, tensor(env).grad()); });
}

Napi::Value TensorHandle::SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    at::Tensor& self = const_cast<at::Tensor&>(tensor(env));
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
      self.mutable_grad().reset();
    } else {
      // The same checks as PyTorch's setter: a mismatched gradient would only
      // fail later, inside backward() or an optimizer step.
      const at::Tensor& grad = FromValue(info[0], "grad");
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

Napi::Value TensorHandle::Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const at::Tensor& self = tensor(env);
    std::vector<at::Tensor> grads;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
      grads.push_back(FromValue(info[0], "backward(gradient)"));
    }
    bool retain = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    bool create = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    torch::autograd::backward({self}, grads, retain ? c10::optional<bool>(true) : c10::nullopt, create);
    return env.Undefined();
  });
}

Napi::Value TensorHandle::RetainGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    tensor(env).retain_grad();
    return env.Undefined();
  });
}

Napi::Value TensorHandle::IsLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env()).is_leaf());
}

Napi::Value TensorHandle::GradFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& fn = tensor(env).grad_fn();
  if (!fn) return env.Null();
  return Napi::String::New(env, fn->name());
}

// Identifies the storage so that TypeScript can tell views of one tensor apart
// from copies (checkpoint writers share storages the way PyTorch does).
Napi::Value TensorHandle::StorageId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = tensor(env);
  if (!t.has_storage()) return env.Null();
  auto id = reinterpret_cast<uintptr_t>(t.storage().unsafeGetStorageImpl());
  return Napi::Number::New(env, static_cast<double>(id));
}

// Points this wrapper at another tensor, taking over its reference (the source
// wrapper is disposed). Lets a module swap a parameter's value in place.
Napi::Value TensorHandle::Assign(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) ThrowType(env, "assign: expected a Tensor");
  TensorHandle* other = HandleOf(info[0], "assign");
  at::Tensor value = other->tensor(env);
  if (other != this) other->Release(env);
  Release(env);
  disposed_ = false;
  accounted_ = ByteSize(value);
  tensor_ = std::move(value);
  if (accounted_ != 0) Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
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

// The TypeScript Tensor class extends TensorHandle; tensors made here are
// constructed through it so that JavaScript sees one object per tensor.
static Napi::Value SetTensorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(env, "setTensorClass: expected a constructor");
  env.GetInstanceData<AddonData>()->tensorConstructor = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

void InitTensor(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = TensorHandle::Define(env);
  AddonData* data = env.GetInstanceData<AddonData>();
  data->baseConstructor = Napi::Persistent(ctor);
  data->tensorConstructor = Napi::Persistent(ctor);
  exports.Set("TensorHandle", ctor);
  exports.Set("setTensorClass", Napi::Function::New(env, SetTensorClass, "setTensorClass"));
  exports.Set("fromBytes", Napi::Function::New(env, FromBytes, "fromBytes"));
}

}  // namespace moco
