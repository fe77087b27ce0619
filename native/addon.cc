// Entry point of the native addon: registers each part's functions.
#include "common.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace moco {

// glibc serves blocks from 128 KiB up with mmap, but raises that threshold to
// the size of each mmapped block freed (up to 32 MiB). Once a checkpoint's or
// an optimizer's multi-MiB buffers have been freed, tensor buffers of that size
// come from the heap instead, where the small records N-API and V8 free later
// pin them in place: resident memory climbs in steps over a long run and is
// never returned. A fixed threshold (which also fixes the trim threshold)
// keeps large tensors in mmap, returned to the system when freed. 1 MiB keeps
// activations of small images on the heap, so that steps do not pay a page
// fault per buffer. MOCO_CXR_MMAP_THRESHOLD=<bytes> sets another threshold,
// `default` keeps glibc's adaptive one; glibc's own MALLOC_MMAP_THRESHOLD_
// (or GLIBC_TUNABLES) wins when set.
constexpr int kMmapThreshold = 1 << 20;

void SetMallocThreshold() {
#ifdef M_MMAP_THRESHOLD
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "mmap_threshold") != nullptr) return;
  const char* chosen = std::getenv("MOCO_CXR_MMAP_THRESHOLD");
  int threshold = kMmapThreshold;
  if (chosen != nullptr) {
    if (std::string(chosen) == "default") return;
    char* end = nullptr;
    long value = std::strtol(chosen, &end, 10);
    if (end == chosen || *end != '\0' || value <= 0 || value > (32L << 20)) return;
    threshold = static_cast<int>(value);
  }
  mallopt(M_MMAP_THRESHOLD, threshold);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  SetMallocThreshold();
  env.SetInstanceData(new AddonData());
  InitTensor(env, exports);
  InitDispatch(env, exports);
  InitRuntime(env, exports);
  return exports;
}

NODE_API_MODULE(moco_torch, Init)

}  // namespace moco
