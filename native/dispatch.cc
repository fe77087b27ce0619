// Calls any ATen operator by its schema name through libtorch's dispatcher, so
// one small binding reaches every kernel (with autograd) instead of one
// hand-written wrapper per op. Arguments are converted by the schema's types.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <cmath>
#include <deque>
#include <limits>
#include <optional>

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

struct OpEntry {
  c10::OperatorHandle handle;
  std::string label;  // "aten::conv2d" or "aten::add.Tensor", for messages
  std::vector<ArgSpec> args;
};

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

// resolve(name, overload) -> { id, args: [{ name, optional, hasDefault }] }
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
  Registry().push_back(std::move(entry));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", static_cast<double>(Registry().size() - 1));
  out.Set("args", args);
  out.Set("returns", static_cast<double>(schema.returns().size()));
  return out;
}

const OpEntry& EntryFor(Napi::Env env, const Napi::Value& id) {
  if (!id.IsNumber()) ThrowType(env, "call: operator id must be a number");
  uint32_t i = id.As<Napi::Number>().Uint32Value();
  if (i >= Registry().size()) ThrowType(env, "call: unknown operator id");
  return Registry()[i];
}

std::vector<c10::IValue> BuildStack(Napi::Env env, const OpEntry& op, const Napi::Value& argsValue) {
  if (!argsValue.IsArray()) ThrowType(env, op.label + ": arguments must be an array");
  Napi::Array jsArgs = argsValue.As<Napi::Array>();
  if (jsArgs.Length() > op.args.size()) {
    ThrowType(env, op.label + ": takes " + std::to_string(op.args.size()) + " arguments, got " +
                       std::to_string(jsArgs.Length()));
  }
  std::vector<c10::IValue> stack;
  stack.reserve(op.args.size());
  for (uint32_t i = 0; i < op.args.size(); ++i) {
    const ArgSpec& arg = op.args[i];
    Napi::Value v = i < jsArgs.Length() ? jsArgs.Get(i) : env.Undefined();
    if (v.IsUndefined() || v.IsNull()) {
      if (arg.defaultValue && v.IsUndefined()) {
        stack.push_back(*arg.defaultValue);
      } else if (arg.optional) {
        stack.emplace_back();
      } else {
        ThrowType(env, op.label + ": argument '" + arg.name + "' is required");
      }
      continue;
    }
    stack.push_back(Convert(env, op, arg, v));
  }
  return stack;
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
    if (discard || stack.empty()) return env.Undefined();
    if (stack.size() == 1) return FromIValue(env, stack[0]);
    Napi::Array out = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); ++i) out.Set(static_cast<uint32_t>(i), FromIValue(env, stack[i]));
    return out;
  });
}

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
}

}  // namespace moco
