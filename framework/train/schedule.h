// Learning-rate schedules: the factor applied to each optimizer's base learning rate at a step.
//   constant | linear (to 0 at the last step) | cosine (to 0), each after `warmup` steps of linear warm-up;
//   linear and cosine may first hold the full rate for `hold` steps after the warm-up: the decay then runs
//   from 1 at step warmup + hold to 0 at step total (CycleGAN: constant for 100 epochs, then linear to 0
//   over the next 100).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace gantry {

enum class LrSchedule { kConstant, kLinear, kCosine };

inline LrSchedule parse_schedule(const std::string& s) {
  return s == "linear" ? LrSchedule::kLinear : s == "cosine" ? LrSchedule::kCosine : LrSchedule::kConstant;
}

// Factor in [0, 1] for the update taken at `step` (0-based) of `total`.
inline double lr_factor(LrSchedule schedule, int64_t step, int64_t total, int64_t warmup, int64_t hold = 0) {
  if (warmup > 0 && step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t start = warmup + hold;  // the first step of the decay
  if (step < start) return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, total - start));
  const double t = std::min(1.0, static_cast<double>(step - start) / span);
  switch (schedule) {
    case LrSchedule::kLinear: return 1.0 - t;
    case LrSchedule::kCosine: return 0.5 * (1.0 + std::cos(M_PI * t));
    default: return 1.0;
  }
}

}  // namespace gantry
