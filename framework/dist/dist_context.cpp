#include "dist/dist_context.h"

#include <algorithm>

#include "core/parallel.h"

namespace gantry {

int intra_op_threads(const DistContext& ctx, int override_threads, unsigned hardware_cores) {
  if (override_threads > 0) return override_threads;
  const int cores = static_cast<int>(hardware_cores ? hardware_cores : hardware_threads());
  return std::max(1, cores / std::max(1, ctx.local_size));
}

}  // namespace gantry
