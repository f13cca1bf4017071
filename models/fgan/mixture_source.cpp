#include "fgan/mixture_source.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace gantry::fgan {

torch::Tensor sample_mixture(const std::vector<GaussComponent>& mixture, int64_t n, at::Generator gen) {
  if (mixture.empty()) throw std::invalid_argument("sample_mixture: empty mixture");
  auto u = at::rand({n}, gen, torch::kFloat64);
  auto z = at::randn({n}, gen, torch::kFloat64);
  auto out = torch::empty({n}, torch::kFloat64);
  double total = 0, below = 0;
  for (const auto& c : mixture) total += c.weight;
  for (size_t k = 0; k < mixture.size(); ++k) {
    const auto& c = mixture[k];
    const double above = below + c.weight / total;
    auto pick = k + 1 == mixture.size() ? (u >= below) : ((u >= below) & (u < above));
    out = torch::where(pick, z * std::sqrt(c.variance) + c.mean, out);
    below = above;
  }
  return out.to(torch::kFloat32);
}

MixtureSource::MixtureSource(std::vector<GaussComponent> mixture, const SourceSpec& spec, uint64_t stream,
                             DataPosition start)
    : mixture_(std::move(mixture)), spec_(spec), stream_(stream), position_(start) {
  if (spec_.world_size < 1 || spec_.global_batch % spec_.world_size != 0)
    throw std::invalid_argument("MixtureSource: global batch must divide by the world size");
}

Batch MixtureSource::next() {
  auto gen = batch_generator(spec_.seed, 0x313D0000ull + stream_, position_);
  Batch b;
  b.images = rank_rows(sample_mixture(mixture_, spec_.global_batch, gen), spec_.rank, spec_.world_size).reshape({-1, 1, 1, 1});
  b.position = position_;
  position_.index += spec_.global_batch;
  return b;
}

}  // namespace gantry::fgan
