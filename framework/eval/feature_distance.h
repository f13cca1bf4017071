// Distances between two sets of images in a feature space (a classifier's penultimate layer, or
// Inception-v3's pool features): the Fréchet distance of Gaussians fitted to each set (Heusel et al.
// 2017, "FID" in Inception features) and the kernel distance (Bińkowski et al. 2018, "KID": the unbiased
// MMD² with the cubic polynomial kernel, averaged over random subsets).
// Distributed: each rank adds its share to a FeatureMoments and all_reduce() sums them, so the moments
// of 50k images cost one reduction of d + d² doubles whatever the world size; KID needs the features
// themselves (pairs), which the caller gathers.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>

#include "dist/communicator.h"

namespace gantry {

struct GaussianFit {
  torch::Tensor mean;  // (d) float64
  torch::Tensor cov;   // (d, d) float64, unbiased (divides by count − 1)
  int64_t count = 0;
};

// Σx and Σxxᵀ in float64 over the rows added; summed over ranks by all_reduce().
class FeatureMoments {
 public:
  explicit FeatureMoments(int64_t dims);
  void add(const torch::Tensor& features);  // (N, d), any floating type, any device
  void all_reduce(Communicator& comm);      // every rank ends with the sums over all ranks
  int64_t count() const { return count_; }
  GaussianFit fit() const;  // needs count ≥ 2

 private:
  torch::Tensor sum_, outer_;  // (d), (d, d) float64 on the CPU
  int64_t count_ = 0;
};

// ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½, in float64, the square roots by symmetric
// eigendecompositions (eigenvalues below 0, rounding of a positive semi-definite matrix, taken as 0).
// tr (Σ₁^½ Σ₂ Σ₁^½)^½ = tr (Σ₁Σ₂)^½, the form scipy's sqrtm computes, without a non-symmetric root.
double frechet_distance(const GaussianFit& a, const GaussianFit& b);

// Unbiased MMD² between rows of x (n, d) and y (m, d) with k(u, v) = (uᵀv / d + 1)³.
double mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y);

struct KidResult {
  double mean = 0, std = 0;  // over the subsets
  int64_t subsets = 0, subset_size = 0;
};
// KID: MMD² over `subsets` random subsets of `subset_size` rows of each set (without replacement within a
// subset; the sets' sizes if smaller), drawn from `gen`.
KidResult kernel_distance(const torch::Tensor& x, const torch::Tensor& y, int64_t subsets, int64_t subset_size,
                          at::Generator& gen);

}  // namespace gantry
