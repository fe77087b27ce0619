// Calls any ATen operator by its schema name through libtorch's dispatcher, so
// one small binding reaches every kernel (with autograd) instead of one
// hand-written wrapper per op. Arguments are converted by the schema's types.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace moco {

namespace {

enum class Kind {
  Tensor,
  Int,
  Float,
  Bool,
  Scalar,
  String,
  Device,
  IntList,
  FloatList,
  BoolList,
  TensorList,
  OptionalTensorList,
  Generator,
  // Enumerations travel as integers; out-of-range codes are undefined behaviour
  // inside libtorch (a crash, not an error), so they are checked here.
  ScalarType,
  Layout,
  MemoryFormat,
  Unsupported,
};

struct ArgSpec {
  std::string name;
  Kind kind;
  bool optional;
  c10::optional<int32_t> fixedSize;  // for int[2]-style lists a single integer is repeated
  c10::optional<c10::IValue> defaultValue;
};

struct FastPath;

struct OpEntry {
  c10::OperatorHandle handle;
  std::string label;  // "aten::conv2d" or "aten::add.Tensor", for messages
  std::vector<ArgSpec> args;
  // An unboxed call for the commonest signatures (see FastPath), or null.
  std::shared_ptr<const FastPath> fast;
};

// The unboxed path for a schema, or null when its signature has none (below).
std::shared_ptr<const FastPath> FastPathFor(const c10::OperatorHandle& handle, const std::vector<ArgSpec>& args);

// Entries live for the process: ids handed to JavaScript index this deque.
std::deque<OpEntry>& Registry() {
  static std::deque<OpEntry> registry;
  return registry;
}

Kind KindOf(const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return Kind::Tensor;
    case c10::TypeKind::IntType:
#if TORCH_VERSION_MAJOR >= 2
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
#endif
      return Kind::Int;
    case c10::TypeKind::FloatType:
#if TORCH_VERSION_MAJOR >= 2
    case c10::TypeKind::SymFloatType:
#endif
      return Kind::Float;
    case c10::TypeKind::BoolType:
      return Kind::Bool;
    case c10::TypeKind::NumberType:
      return Kind::Scalar;
    case c10::TypeKind::StringType:
      return Kind::String;
    case c10::TypeKind::DeviceObjType:
      return Kind::Device;
    case c10::TypeKind::GeneratorType:
      return Kind::Generator;
    case c10::TypeKind::ListType: {
      c10::TypePtr element = type->castRaw<c10::ListType>()->getElementType();
      switch (element->kind()) {
        case c10::TypeKind::IntType:
#if TORCH_VERSION_MAJOR >= 2
        case c10::TypeKind::SymIntType:
#endif
          return Kind::IntList;
        case c10::TypeKind::FloatType:
          return Kind::FloatList;
        case c10::TypeKind::BoolType:
          return Kind::BoolList;
        case c10::TypeKind::TensorType:
          return Kind::TensorList;
        case c10::TypeKind::OptionalType:
          if (element->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::TensorType) {
            return Kind::OptionalTensorList;
          }
          return Kind::Unsupported;
        default:
          return Kind::Unsupported;
      }
    }
    default:
      return Kind::Unsupported;
  }
}

// The enumeration an argument really is (the schema's type() says int for it).
std::optional<Kind> EnumKindOf(const c10::Argument& argument) {
  c10::TypePtr real = argument.real_type();
  if (real->kind() == c10::TypeKind::OptionalType) real = real->castRaw<c10::OptionalType>()->getElementType();
  switch (real->kind()) {
    case c10::TypeKind::ScalarTypeType:
      return Kind::ScalarType;
    case c10::TypeKind::LayoutType:
      return Kind::Layout;
    case c10::TypeKind::MemoryFormatType:
      return Kind::MemoryFormat;
    default:
      return std::nullopt;
  }
}

[[noreturn]] void ArgError(Napi::Env env, const OpEntry& op, const ArgSpec& arg, const std::string& expected) {
  ThrowType(env, op.label + ": argument '" + arg.name + "' must be " + expected);
}

int64_t ToInt(Napi::Env env, const OpEntry& op, const ArgSpec& arg, const Napi::Value& v) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::trunc(d) == d && std::abs(d) <= 9007199254740992.0) return static_cast<int64_t>(d);
  } else if (v.IsBigInt()) {
    bool lossless = false;
    int64_t i = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (lossless) return i;
  } else if (v.IsBoolean()) {
    return v.As<Napi::Boolean>().Value() ? 1 : 0;
  }
  ArgError(env, op, arg, "an integer");
}

double ToFloat(Napi::Env env, const OpEntry& op, const ArgSpec& arg, const Napi::Value& v) {
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
  ArgError(env, op, arg, "a number");
}

// JavaScript has one number type: an integral value becomes an integer Scalar
// (so integer tensors stay integer), anything else a double.
c10::Scalar ToScalar(Napi::Env env, const OpEntry& op, const ArgSpec& arg, const Napi::Value& v) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) return c10::Scalar(ToInt(env, op, arg, v));
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::trunc(d) == d && std::abs(d) <= 9007199254740992.0) {
      return c10::Scalar(static_cast<int64_t>(d));
    }
    return c10::Scalar(d);
  }
  ArgError(env, op, arg, "a number or boolean");
}

c10::IValue Convert(Napi::Env env, const OpEntry& op, const ArgSpec& arg, const Napi::Value& v) {
  switch (arg.kind) {
    case Kind::Tensor:
      if (TensorHandle* handle = TensorHandle::TryHandle(v)) return handle->tensor(env);
      if (!TensorHandle::IsHandle(v)) ArgError(env, op, arg, "a Tensor");
      return TensorHandle::FromValue(v, arg.name.c_str());
    case Kind::Int:
      return ToInt(env, op, arg, v);
    case Kind::ScalarType:
    case Kind::Layout:
    case Kind::MemoryFormat: {
      int64_t code = ToInt(env, op, arg, v);
      int64_t end = arg.kind == Kind::ScalarType ? static_cast<int64_t>(c10::ScalarType::Undefined)
                    : arg.kind == Kind::Layout   ? static_cast<int64_t>(c10::Layout::NumOptions)
                                                 : static_cast<int64_t>(c10::MemoryFormat::NumOptions);
      if (code < 0 || code >= end) {
        ArgError(env, op, arg, "a valid code (0 to " + std::to_string(end - 1) + "), got " + std::to_string(code));
      }
      return code;
    }
    case Kind::Float:
      return ToFloat(env, op, arg, v);
    case Kind::Bool:
      if (!v.IsBoolean()) ArgError(env, op, arg, "a boolean");
      return v.As<Napi::Boolean>().Value();
    case Kind::Scalar:
      return ToScalar(env, op, arg, v);
    case Kind::String:
      if (!v.IsString()) ArgError(env, op, arg, "a string");
      return v.As<Napi::String>().Utf8Value();
    case Kind::Device:
      if (!v.IsString()) ArgError(env, op, arg, "a device name such as 'cpu' or 'cuda:0'");
      return ParseDevice(env, v.As<Napi::String>().Utf8Value());
    case Kind::IntList: {
      if (v.IsNumber() && arg.fixedSize) {
        return c10::List<int64_t>(std::vector<int64_t>(*arg.fixedSize, ToInt(env, op, arg, v)));
      }
      if (!v.IsArray()) ArgError(env, op, arg, "an array of integers");
      Napi::Array a = v.As<Napi::Array>();
      c10::List<int64_t> out;
      out.reserve(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(ToInt(env, op, arg, a.Get(i)));
      return out;
    }
    case Kind::FloatList: {
      if (!v.IsArray()) ArgError(env, op, arg, "an array of numbers");
      Napi::Array a = v.As<Napi::Array>();
      c10::List<double> out;
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(ToFloat(env, op, arg, a.Get(i)));
      return out;
    }
    case Kind::BoolList: {
      if (!v.IsArray()) ArgError(env, op, arg, "an array of booleans");
      Napi::Array a = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value e = a.Get(i);
        if (!e.IsBoolean()) ArgError(env, op, arg, "an array of booleans");
        out.push_back(e.As<Napi::Boolean>().Value());
      }
      return out;
    }
    case Kind::TensorList: {
      if (!v.IsArray()) ArgError(env, op, arg, "an array of Tensors");
      Napi::Array a = v.As<Napi::Array>();
      c10::List<at::Tensor> out;
      out.reserve(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value e = a.Get(i);
        if (TensorHandle* handle = TensorHandle::TryHandle(e)) {
          out.push_back(handle->tensor(env));
          continue;
        }
        if (!TensorHandle::IsHandle(e)) ArgError(env, op, arg, "an array of Tensors");
        out.push_back(TensorHandle::FromValue(e, arg.name.c_str()));
      }
      return out;
    }
    case Kind::OptionalTensorList: {
      if (!v.IsArray()) ArgError(env, op, arg, "an array of Tensors or nulls");
      Napi::Array a = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value e = a.Get(i);
        if (e.IsNull() || e.IsUndefined()) {
          out.push_back(c10::nullopt);
        } else if (TensorHandle* handle = TensorHandle::TryHandle(e)) {
          out.push_back(handle->tensor(env));
        } else {
          if (!TensorHandle::IsHandle(e)) ArgError(env, op, arg, "an array of Tensors or nulls");
          out.push_back(TensorHandle::FromValue(e, arg.name.c_str()));
        }
      }
      return out;
    }
    case Kind::Generator:
      ArgError(env, op, arg, "left out (generators are not exposed; seed with manualSeed)");
    case Kind::Unsupported:
      break;
  }
  ArgError(env, op, arg, "left out: its type is not supported by this binding");
}

Napi::Value FromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return TensorHandle::Wrap(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) out.Set(static_cast<uint32_t>(i), TensorHandle::Wrap(env, list.get(i)));
    return out;
  }
  if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    Napi::Array out = Napi::Array::New(env, elements.size());
    for (size_t i = 0; i < elements.size(); ++i) out.Set(static_cast<uint32_t>(i), FromIValue(env, elements[i]));
    return out;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) out.Set(static_cast<uint32_t>(i), FromIValue(env, list[i]));
    return out;
  }
  if (v.isScalar()) {
    c10::Scalar s = v.toScalar();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    return Napi::Number::New(env, s.toDouble());
  }
  throw Napi::Error::New(env, "cannot return a value of type " + v.tagKind() + " to JavaScript");
}

// resolve(name, overload) -> { id, args: [{ name, optional, hasDefault }], returns, unboxed }
Napi::Value Resolve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    ThrowType(env, "resolve(name, overload): both must be strings");
  }
  std::string name = info[0].As<Napi::String>();
  std::string overload = info[1].As<Napi::String>();
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) {
    throw Napi::Error::New(env, "no operator " + name + (overload.empty() ? "" : "." + overload) +
                                    " in this libtorch");
  }
  OpEntry entry{*handle, overload.empty() ? name : name + "." + overload, {}};
  const c10::FunctionSchema& schema = handle->schema();
  Napi::Array args = Napi::Array::New(env, schema.arguments().size());
  uint32_t index = 0;
  for (const c10::Argument& a : schema.arguments()) {
    c10::TypePtr type = a.type();
    bool optional = false;
    if (type->kind() == c10::TypeKind::OptionalType) {
      optional = true;
      type = type->castRaw<c10::OptionalType>()->getElementType();
    }
    ArgSpec spec{a.name(), EnumKindOf(a).value_or(KindOf(type)), optional, a.N(), a.default_value()};
    Napi::Object described = Napi::Object::New(env);
    described.Set("name", a.name());
    described.Set("optional", optional);
    described.Set("hasDefault", a.default_value().has_value());
    args.Set(index++, described);
    entry.args.push_back(std::move(spec));
  }
  entry.fast = FastPathFor(*handle, entry.args);
  Registry().push_back(std::move(entry));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", static_cast<double>(Registry().size() - 1));
  out.Set("args", args);
  out.Set("returns", static_cast<double>(schema.returns().size()));
  out.Set("unboxed", Registry().back().fast != nullptr);
  return out;
}

const OpEntry& EntryFor(Napi::Env env, const Napi::Value& id) {
  if (!id.IsNumber()) ThrowType(env, "call: operator id must be a number");
  uint32_t i = id.As<Napi::Number>().Uint32Value();
  if (i >= Registry().size()) ThrowType(env, "call: unknown operator id");
  return Registry()[i];
}

[[noreturn]] void TooMany(Napi::Env env, const OpEntry& op, size_t given) {
  ThrowType(env, op.label + ": takes " + std::to_string(op.args.size()) + " arguments, got " + std::to_string(given));
}

[[noreturn]] void Required(Napi::Env env, const OpEntry& op, const ArgSpec& arg) {
  ThrowType(env, op.label + ": argument '" + arg.name + "' is required");
}

// The boxed stack for `given` arguments, the i-th read by argAt(i).
template <typename ArgAt>
std::vector<c10::IValue> BuildStack(Napi::Env env, const OpEntry& op, uint32_t given, ArgAt&& argAt) {
  if (given > op.args.size()) TooMany(env, op, given);
  std::vector<c10::IValue> stack;
  stack.reserve(op.args.size());
  for (uint32_t i = 0; i < op.args.size(); ++i) {
    const ArgSpec& arg = op.args[i];
    Napi::Value v = i < given ? argAt(i) : env.Undefined();
    if (v.IsUndefined() || v.IsNull()) {
      if (arg.defaultValue && v.IsUndefined()) {
        stack.push_back(*arg.defaultValue);
      } else if (arg.optional) {
        stack.emplace_back();
      } else {
        Required(env, op, arg);
      }
      continue;
    }
    stack.push_back(Convert(env, op, arg, v));
  }
  return stack;
}

std::vector<c10::IValue> BuildStack(Napi::Env env, const OpEntry& op, const Napi::Value& argsValue) {
  if (!argsValue.IsArray()) ThrowType(env, op.label + ": arguments must be an array");
  Napi::Array jsArgs = argsValue.As<Napi::Array>();
  return BuildStack(env, op, jsArgs.Length(), [&](uint32_t i) { return jsArgs.Get(i); });
}

Napi::Value Results(Napi::Env env, const std::vector<c10::IValue>& stack, bool discard) {
  if (discard || stack.empty()) return env.Undefined();
  if (stack.size() == 1) return FromIValue(env, stack[0]);
  Napi::Array out = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); ++i) out.Set(static_cast<uint32_t>(i), FromIValue(env, stack[i]));
  return out;
}

// ---- the unboxed path -------------------------------------------------------
// callBoxed packs the arguments into IValues, and the autograd kernel's boxed
// adapter unpacks them again; for the few signatures most calls have, the
// operator is called unboxed instead, as at::add is from C++ and PyTorch.
// Arguments are read straight from V8 here; anything unusual (a BigInt, a
// wrong type) goes to the same conversions and messages as the boxed path.

struct FastCall {
  Napi::Env env;
  const OpEntry& op;
  const v8::FunctionCallbackInfo<v8::Value>& info;
  uint32_t given;
  AddonData* data;
  v8::Local<v8::Context> context;

  v8::Local<v8::Value> Arg(uint32_t i) const {
    return i < given ? info[static_cast<int>(i) + 1] : v8::Undefined(info.GetIsolate()).As<v8::Value>();
  }
  Napi::Value NapiArg(uint32_t i) const { return Napi::Value(env, ToNapi(Arg(i))); }
  // The schema default of a missing argument (these paths take no optional ones).
  const c10::IValue& Default(uint32_t i, v8::Local<v8::Value> v) const {
    const ArgSpec& arg = op.args[i];
    if (!arg.defaultValue || !v->IsUndefined()) Required(env, op, arg);
    return *arg.defaultValue;
  }
};

bool IsIntegral(double d) { return std::isfinite(d) && std::trunc(d) == d && std::abs(d) <= 9007199254740992.0; }

template <typename T>
struct Slot;

template <>
struct Slot<const at::Tensor&> {
  using Stored = const at::Tensor&;
  static const at::Tensor& Get(const FastCall& c, uint32_t i) {
    v8::Local<v8::Value> v = c.Arg(i);
    if (TensorHandle* handle = TensorHandle::TryHandle(v)) return handle->tensor(c.env);
    if (v->IsNullOrUndefined()) Required(c.env, c.op, c.op.args[i]);
    Napi::Value value = c.NapiArg(i);
    if (!TensorHandle::IsHandle(value)) ArgError(c.env, c.op, c.op.args[i], "a Tensor");
    return TensorHandle::FromValue(value, c.op.args[i].name.c_str());
  }
};

template <>
struct Slot<at::Tensor&> {
  using Stored = at::Tensor&;
  // In-place operators write through the tensor object's own reference.
  static at::Tensor& Get(const FastCall& c, uint32_t i) {
    return const_cast<at::Tensor&>(Slot<const at::Tensor&>::Get(c, i));
  }
};

template <>
struct Slot<const at::Scalar&> {
  using Stored = at::Scalar;
  static at::Scalar Get(const FastCall& c, uint32_t i) {
    v8::Local<v8::Value> v = c.Arg(i);
    if (v->IsNumber()) {
      double d = v.As<v8::Number>()->Value();
      return IsIntegral(d) ? at::Scalar(static_cast<int64_t>(d)) : at::Scalar(d);
    }
    if (v->IsNullOrUndefined()) return c.Default(i, v).toScalar();
    return ToScalar(c.env, c.op, c.op.args[i], c.NapiArg(i));
  }
};

template <>
struct Slot<int64_t> {
  using Stored = int64_t;
  static int64_t Get(const FastCall& c, uint32_t i) {
    v8::Local<v8::Value> v = c.Arg(i);
    if (v->IsNumber()) {
      double d = v.As<v8::Number>()->Value();
      if (IsIntegral(d)) return static_cast<int64_t>(d);
    } else if (v->IsNullOrUndefined()) {
      return c.Default(i, v).toInt();
    }
    return ToInt(c.env, c.op, c.op.args[i], c.NapiArg(i));
  }
};

template <>
struct Slot<double> {
  using Stored = double;
  static double Get(const FastCall& c, uint32_t i) {
    v8::Local<v8::Value> v = c.Arg(i);
    if (v->IsNumber()) return v.As<v8::Number>()->Value();
    if (v->IsNullOrUndefined()) return c.Default(i, v).toDouble();
    return ToFloat(c.env, c.op, c.op.args[i], c.NapiArg(i));
  }
};

template <>
struct Slot<bool> {
  using Stored = bool;
  static bool Get(const FastCall& c, uint32_t i) {
    v8::Local<v8::Value> v = c.Arg(i);
    if (v->IsBoolean()) return v->IsTrue();
    if (v->IsNullOrUndefined()) return c.Default(i, v).toBool();
    ArgError(c.env, c.op, c.op.args[i], "a boolean");
  }
};

struct FastPath {
  virtual ~FastPath() = default;
  // Runs the operator; with `discard` the result is not wrapped.
  virtual v8::Local<v8::Value> Run(const FastCall& call, bool discard) const = 0;
};

template <typename Ret, typename... Args>
class TypedPath final : public FastPath {
 public:
  explicit TypedPath(c10::TypedOperatorHandle<Ret(Args...)> handle) : handle_(std::move(handle)) {}

  v8::Local<v8::Value> Run(const FastCall& call, bool discard) const override {
    return RunWith(call, discard, std::index_sequence_for<Args...>{});
  }

 private:
  template <size_t... I>
  v8::Local<v8::Value> RunWith(const FastCall& call, bool discard, std::index_sequence<I...>) const {
    // A braced list converts the arguments in order, so the first bad one is reported.
    std::tuple<typename Slot<Args>::Stored...> values{Slot<Args>::Get(call, I)...};
    Ret result = handle_.call(std::get<I>(values)...);
    if (discard) return v8::Undefined(call.info.GetIsolate());
    if constexpr (std::is_reference_v<Ret>) {
      return TensorHandle::Make(call.data, call.context, result);  // a new object of the same tensor
    } else {
      return TensorHandle::Make(call.data, call.context, std::move(result));
    }
  }

  c10::TypedOperatorHandle<Ret(Args...)> handle_;
};

using PathMaker = std::shared_ptr<const FastPath> (*)(const c10::OperatorHandle&);

template <typename Ret, typename... Args>
std::shared_ptr<const FastPath> MakePath(const c10::OperatorHandle& handle) {
  // typed() checks the C++ signature the kernels were registered with; a
  // schema whose C++ types differ (SymInt in newer libtorch) stays boxed.
  try {
    return std::make_shared<TypedPath<Ret, Args...>>(handle.typed<Ret(Args...)>());
  } catch (const c10::Error&) {
    return nullptr;
  }
}

using In = const at::Tensor&;
using Out = at::Tensor&;  // a tensor the operator writes (in place)
using Num = const at::Scalar&;

// Signatures by a key of one letter per argument, '>' and the result:
// T tensor, W written tensor, S Scalar, I int, F float, B bool.
const std::map<std::string, PathMaker>& Paths() {
  static const std::map<std::string, PathMaker> paths = {
      {"T>T", &MakePath<at::Tensor, In>},
      {"TT>T", &MakePath<at::Tensor, In, In>},
      {"TTT>T", &MakePath<at::Tensor, In, In, In>},
      {"TS>T", &MakePath<at::Tensor, In, Num>},
      {"TTS>T", &MakePath<at::Tensor, In, In, Num>},
      {"TSS>T", &MakePath<at::Tensor, In, Num, Num>},
      {"TI>T", &MakePath<at::Tensor, In, int64_t>},
      {"TII>T", &MakePath<at::Tensor, In, int64_t, int64_t>},
      {"TIII>T", &MakePath<at::Tensor, In, int64_t, int64_t, int64_t>},
      {"TIT>T", &MakePath<at::Tensor, In, int64_t, In>},
      {"TFB>T", &MakePath<at::Tensor, In, double, bool>},
      {"W>W", &MakePath<at::Tensor&, Out>},
      {"WT>W", &MakePath<at::Tensor&, Out, In>},
      {"WS>W", &MakePath<at::Tensor&, Out, Num>},
      {"WTS>W", &MakePath<at::Tensor&, Out, In, Num>},
      {"WSS>W", &MakePath<at::Tensor&, Out, Num, Num>},
      {"WTT>W", &MakePath<at::Tensor&, Out, In, In>},
      {"WTTS>W", &MakePath<at::Tensor&, Out, In, In, Num>},
      {"WTB>W", &MakePath<at::Tensor&, Out, In, bool>},
  };
  return paths;
}

bool Writes(const c10::Argument& a) { return a.alias_info() != nullptr && a.alias_info()->isWrite(); }

// The unboxed path for a schema, or null when its signature has none.
std::shared_ptr<const FastPath> FastPathFor(const c10::OperatorHandle& handle, const std::vector<ArgSpec>& args) {
  const c10::FunctionSchema& schema = handle.schema();
  if (schema.is_vararg() || schema.returns().size() != 1) return nullptr;
  const c10::Argument& result = schema.returns()[0];
  if (result.type()->kind() != c10::TypeKind::TensorType) return nullptr;
  std::string key;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].optional) return nullptr;
    switch (args[i].kind) {
      case Kind::Tensor:
        key += Writes(schema.arguments()[i]) ? 'W' : 'T';
        break;
      case Kind::Scalar:
        key += 'S';
        break;
      case Kind::Int:
        key += 'I';
        break;
      case Kind::Float:
        key += 'F';
        break;
      case Kind::Bool:
        key += 'B';
        break;
      default:
        return nullptr;
    }
  }
  key += '>';
  key += Writes(result) ? 'W' : 'T';
  auto found = Paths().find(key);
  return found == Paths().end() ? nullptr : found->second(handle);
}

// call(id, args[, discard]) runs the operator. With discard the result is not
// wrapped (in-place ops return their input, which JavaScript already holds).
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) ThrowType(env, "call(id, args): two arguments expected");
  const OpEntry& op = EntryFor(env, info[0]);
  bool discard = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  return Guard(env, [&]() -> Napi::Value {
    std::vector<c10::IValue> stack = BuildStack(env, op, info[1]);
    op.handle.callBoxed(&stack);
    return Results(env, stack, discard);
  });
}

// invoke(id, ...args) and invokeInPlace(id, ...args): call(id, args) with the
// arguments passed directly, the per-operator path. Written against V8, as the
// result object and each argument would otherwise cost Node-API calls.
void InvokeWith(const v8::FunctionCallbackInfo<v8::Value>& info, bool discard) {
  auto* data = static_cast<AddonData*>(info.Data().As<v8::External>()->Value());
  v8::Isolate* isolate = info.GetIsolate();
  GuardV8(isolate, [&] {
    Napi::Env env(data->env);
    v8::Local<v8::Value> id = info[0];
    if (!id->IsNumber()) ThrowType(env, "call: operator id must be a number");
    if (!id->IsUint32() || id.As<v8::Uint32>()->Value() >= Registry().size()) {
      ThrowType(env, "call: unknown operator id");
    }
    const OpEntry& op = Registry()[id.As<v8::Uint32>()->Value()];
    uint32_t given = static_cast<uint32_t>(info.Length() - 1);
    if (given > op.args.size()) TooMany(env, op, given);
    if (op.fast) {
      FastCall call{env, op, info, given, data, isolate->GetCurrentContext()};
      info.GetReturnValue().Set(op.fast->Run(call, discard));
      return;
    }
    std::vector<c10::IValue> stack =
        BuildStack(env, op, given, [&](uint32_t i) { return Napi::Value(env, ToNapi(info[static_cast<int>(i) + 1])); });
    op.handle.callBoxed(&stack);
    info.GetReturnValue().Set(ToV8(Results(env, stack, discard)));
  });
}

void Invoke(const v8::FunctionCallbackInfo<v8::Value>& info) { InvokeWith(info, false); }
void InvokeInPlace(const v8::FunctionCallbackInfo<v8::Value>& info) { InvokeWith(info, true); }

// The schema text of an operator, for error messages and documentation.
Napi::Value Schema(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const OpEntry& op = EntryFor(env, info[0]);
  std::ostringstream text;
  text << op.handle.schema();
  return Napi::String::New(env, text.str());
}

}  // namespace

void InitDispatch(Napi::Env env, Napi::Object exports) {
  exports.Set("resolve", Napi::Function::New(env, Resolve, "resolve"));
  exports.Set("call", Napi::Function::New(env, Call, "call"));
  exports.Set("schema", Napi::Function::New(env, Schema, "schema"));
  AddonData* data = env.GetInstanceData<AddonData>();
  v8::Isolate* isolate = data->isolate;
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::Local<v8::External> external = v8::External::New(isolate, data);
  auto define = [&](const char* name, v8::FunctionCallback callback) {
    v8::Local<v8::Function> fn =
        v8::Function::New(context, callback, external, 0, v8::ConstructorBehavior::kThrow).ToLocalChecked();
    fn->SetName(v8::String::NewFromUtf8(isolate, name).ToLocalChecked());
    exports.Set(name, Napi::Value(env, ToNapi(fn)));
  };
  define("invoke", Invoke);
  define("invokeInPlace", InvokeInPlace);
}

}  // namespace moco
