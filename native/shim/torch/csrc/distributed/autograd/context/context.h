// Stand-in for PyTorch 1.13's torch/csrc/distributed/autograd/context/context.h,
// which Debian's libtorch-dev leaves out although its c10d/reducer.hpp includes
// it (libtorch_cpu itself carries the code). The reducer's header needs only two
// names from it: DistAutogradContext::GradCallback (in a static_assert) and
// ContextPtr (the type of a member that the library alone touches). Both are
// declared here as the real header declares them, in the same namespace, so the
// Reducer's layout and its mangled symbols are the library's own. Nothing else
// of distributed autograd is declared, and the addon uses none of it.
//
// binding.gyp puts this folder on the include path only for the Debian libtorch
// with c10d on; a full libtorch (LIBTORCH=...) ships the real header.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

// The real class holds the state of one distributed autograd pass; only its
// callback type is needed by reducer.hpp.
class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
