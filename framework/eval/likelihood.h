// Likelihoods of 8-bit images, in a form every recipe's evaluation can share: the stored pixel values
// 0..255 of images in [-1, 1], a 256-way categorical and a discretised logistic over them (both
// normalised over the 256 values, so −log P is a code length), importance-weighted log-mean-exp, and
// bits/dim. Negative log-likelihoods are per image, in nats, shape (B), float64 (sums of D float32 terms).
#pragma once

#include <torch/types.h>

namespace gantry {

inline constexpr int64_t kPixelLevels = 256;

// (B, C, H, W) float in [-1, 1] as images_to_float makes them (v · 2/255 − 1) → int64 values v in 0..255.
torch::Tensor pixel_values(const torch::Tensor& images);

// −log P(v) per image for a 256-way categorical per sub-pixel. logits (B, C, 256, H, W), values (B, C, H, W).
torch::Tensor categorical_nll(const torch::Tensor& logits, const torch::Tensor& values);

// −log P(v) per image for a discretised logistic per sub-pixel (Salimans et al. 2017, one component):
// the mass of a logistic(mean, exp(log_scale)) on the bin [x − 1/255, x + 1/255] around x = v · 2/255 − 1,
// with the edge bins of v = 0 and v = 255 extended to −∞ and +∞. mean, log_scale, values: (B, C, H, W).
torch::Tensor discretized_logistic_nll(const torch::Tensor& mean, const torch::Tensor& log_scale,
                                       const torch::Tensor& values);

// Per row of log_weights (B, k): log (1/k Σ_i exp w_i), the importance-weighted bound's estimate (Burda et
// al. 2016), computed without overflow.
torch::Tensor log_mean_exp(const torch::Tensor& log_weights);

// nats per image → bits per sub-pixel (dims = C·H·W).
inline double bits_per_dim(double nats_per_image, int64_t dims) {
  return nats_per_image / (static_cast<double>(dims) * 0.69314718055994530942);
}

}  // namespace gantry
