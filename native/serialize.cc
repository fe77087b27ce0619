// Writes PyTorch's zip checkpoint format with libtorch's own pickler, so that
// Python's torch.load reads our files exactly as it reads its own.
#include "common.h"

#include <torch/csrc/jit/serialization/pickle.h>

namespace moco {

namespace {

// The TypeScript side flattens its values into [tag, payload] pairs so that the
// choices JavaScript cannot express (int vs float, tuple vs list, int keys) are
// already made when they arrive here.
enum Tag { kNone = 0, kBool = 1, kInt = 2, kFloat = 3, kString = 4, kTensor = 5, kList = 6, kTuple = 7, kDict = 8 };

c10::IValue ToIValue(Napi::Env env, const Napi::Value& node, int depth) {
  if (depth > 64) throw Napi::Error::New(env, "save: values nest deeper than 64 levels");
  if (!node.IsArray()) ThrowType(env, "save: malformed value tree");
  Napi::Array pair = node.As<Napi::Array>();
  int tag = pair.Get(0u).As<Napi::Number>().Int32Value();
  Napi::Value payload = pair.Get(1u);
  switch (tag) {
    case kNone:
      return c10::IValue();
    case kBool:
      return payload.As<Napi::Boolean>().Value();
    case kInt:
      return payload.As<Napi::Number>().Int64Value();
    case kFloat:
      return payload.As<Napi::Number>().DoubleValue();
    case kString:
      return payload.As<Napi::String>().Utf8Value();
    case kTensor:
      return TensorHandle::FromValue(payload, "save").detach();
    case kList:
    case kTuple: {
      Napi::Array items = payload.As<Napi::Array>();
      std::vector<c10::IValue> values;
      values.reserve(items.Length());
      for (uint32_t i = 0; i < items.Length(); ++i) values.push_back(ToIValue(env, items.Get(i), depth + 1));
      if (tag == kTuple) return c10::ivalue::Tuple::create(std::move(values));
      c10::impl::GenericList list(c10::AnyType::get());
      for (auto& v : values) list.push_back(std::move(v));
      return list;
    }
    case kDict: {
      Napi::Array entries = payload.As<Napi::Array>();
      bool intKeys = entries.Length() > 0 && entries.Get(0u).As<Napi::Array>().Get(0u).IsNumber();
      c10::TypePtr keyType = intKeys ? c10::TypePtr(c10::IntType::get()) : c10::TypePtr(c10::StringType::get());
      c10::impl::GenericDict dict(keyType, c10::AnyType::get());
      for (uint32_t i = 0; i < entries.Length(); ++i) {
        Napi::Array entry = entries.Get(i).As<Napi::Array>();
        Napi::Value key = entry.Get(0u);
        c10::IValue value = ToIValue(env, entry.Get(1u), depth + 1);
        if (intKeys) {
          if (!key.IsNumber()) ThrowType(env, "save: a dict mixes integer and string keys");
          dict.insert_or_assign(key.As<Napi::Number>().Int64Value(), std::move(value));
        } else {
          if (!key.IsString()) ThrowType(env, "save: a dict mixes integer and string keys");
          dict.insert_or_assign(key.As<Napi::String>().Utf8Value(), std::move(value));
        }
      }
      return dict;
    }
    default:
      ThrowType(env, "save: unknown value tag " + std::to_string(tag));
  }
}

Napi::Value PickleSave(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) ThrowType(env, "pickleSave(tree): a value tree is required");
  return Guard(env, [&]() -> Napi::Value {
    c10::IValue value = ToIValue(env, info[0], 0);
    std::vector<char> bytes = torch::jit::pickle_save(value);
    return Napi::Buffer<char>::Copy(env, bytes.data(), bytes.size());
  });
}

}  // namespace

void InitSerialize(Napi::Env env, Napi::Object exports) {
  exports.Set("pickleSave", Napi::Function::New(env, PickleSave, "pickleSave"));
}

}  // namespace moco
