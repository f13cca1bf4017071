// The 1-D experiment's data: an endless stream of samples of a Gaussian mixture (default: the paper's
// P, gauss_mixture.h), as batches of (b, 1, 1, 1) floats. The global batch at each data position is
// drawn from (seed, stream, position) and sliced per rank, so every world size sees the same samples
// and a resumed run continues the same stream.
#pragma once

#include <vector>

#include "fgan/gauss_mixture.h"
#include "train/batch_source.h"
#include "train/recipe.h"

namespace gantry::fgan {

// `n` samples of the mixture from generator `gen`, as a (n) float32 tensor.
torch::Tensor sample_mixture(const std::vector<GaussComponent>& mixture, int64_t n, at::Generator gen);

class MixtureSource : public BatchSource {
 public:
  // stream: 0 for training, another value for held-out samples.
  MixtureSource(std::vector<GaussComponent> mixture, const SourceSpec& spec, uint64_t stream, DataPosition start);
  Batch next() override;
  DataPosition position() const override { return position_; }

 private:
  std::vector<GaussComponent> mixture_;
  SourceSpec spec_;
  uint64_t stream_;
  DataPosition position_;
};

}  // namespace gantry::fgan
