// Entry point of the native addon: registers each part's functions.
#include "common.h"

namespace moco {

void InitDistributed(Napi::Env env, Napi::Object exports);  // distributed.cc
void InitAugment(Napi::Env env, Napi::Object exports);      // augment.cc

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // No finalizer: the data outlives the environment (see AddonData).
  auto* data = new AddonData();
  data->env = env;
  data->isolate = v8::Isolate::GetCurrent();
  NAPI_THROW_IF_FAILED(env, napi_set_instance_data(env, data, nullptr, nullptr), exports);
  InitTensor(env, exports);
  InitDispatch(env, exports);
  InitRuntime(env, exports);
  InitDistributed(env, exports);
  InitAugment(env, exports);
  return exports;
}

NODE_API_MODULE(moco_torch, Init)

}  // namespace moco
