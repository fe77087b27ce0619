// Entry point of the native addon: registers each part's functions.
#include "common.h"

namespace moco {

void InitDistributed(Napi::Env env, Napi::Object exports);  // distributed.cc
void InitAugment(Napi::Env env, Napi::Object exports);      // augment.cc

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InitTensor(env, exports);
  InitDispatch(env, exports);
  InitRuntime(env, exports);
  InitDistributed(env, exports);
  InitAugment(env, exports);
  return exports;
}

NODE_API_MODULE(moco_torch, Init)

}  // namespace moco
