// FusedAdam: torch::optim::Adam (same options, same numbers, same checkpoint archive) whose step updates
// each parameter group over flat buffers instead of a loop of about ten LibTorch calls per parameter
// tensor: on the CPU in float32 one loop that reads and writes each buffer once; elsewhere (CUDA, other
// dtypes, AMSGrad) seven buffer-wide LibTorch operations. Use it wherever a recipe would use
// torch::optim::Adam:
//
//   opt_ = std::make_unique<FusedAdam>(net->parameters(), torch::optim::AdamOptions(lr).betas({0.5, 0.999}));
//
// How: on its first step a group's parameters are copied into one flat buffer and become views of it
// (as Python's `p.data = flat[a:b]`), and the Adam moments live in flat buffers of the same layout; the
// per-parameter AdamParamState entries are views into them, so save/load and Adam's own step see the
// usual state. The layout follows the gradients when they already tile one buffer (GradSync's bucket
// views: the group's gradients are one contiguous range), so the step reads them in place; otherwise
// it gathers them into a scratch buffer (one copy per parameter). Nothing is allocated per step.
// A step falls back to torch::optim::Adam::step() (exact, per parameter) when some parameter has no
// gradient, parameters differ in dtype or device, or their Adam step counts differ; a parameter moved
// elsewhere (a checkpoint load replaces its storage) is noticed and the layout rebuilt.
// save() writes torch::optim::Adam's archive (through a plain Adam holding contiguous copies of the
// state), which either optimizer loads; load() reads one.
#pragma once

#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <vector>

namespace gantry {

class FusedAdam : public torch::optim::Adam {
 public:
  explicit FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions defaults = {});
  explicit FusedAdam(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                     torch::optim::AdamOptions defaults = {});
  ~FusedAdam() override;

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // How steps ran so far (tests and benchmarks check the fast path is the one taken).
  struct Stats {
    int64_t in_place_group_steps = 0;  // gradients read in place (they tile one buffer)
    int64_t gathered_group_steps = 0;  // gradients copied into the scratch buffer first
    int64_t fallback_steps = 0;        // torch::optim::Adam::step() per parameter
    int64_t layouts = 0;               // flat layouts built (first step, after load, after a fallback)
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Flat;
  bool ready(size_t group);       // the group's layout is valid and every gradient is defined
  bool build(size_t group);       // (re)builds the layout; false: this group cannot be fused now
  void fused_step(size_t group);  // the update, on flat buffers
  const torch::Tensor& flat_grad(Flat& f);

  std::vector<Flat> flats_;  // per param group
  Stats stats_;
};

}  // namespace gantry
