// CycleGAN's objectives (Zhu et al. 2017, eq. 1-3 with the least-squares GAN loss of section 4, and the
// identity loss of section 5.2), as the reference's backward_G and backward_D compute them.
// Names follow the paper: G maps A → B, F maps B → A; D_A judges domain A, D_B domain B.
#pragma once

#include <torch/types.h>

#include "cyclegan/cyclegan_model.h"

namespace gantry::cyclegan {

struct LossWeights {
  double cycle = 10;      // λ (cyclegan.lambda_cycle)
  double identity = 0.5;  // identity weight as a fraction of λ (cyclegan.lambda_identity; 0: off)
};

// Least-squares GAN: mean (score - 1)² for real targets, mean score² for fake ones.
torch::Tensor lsgan_loss(const torch::Tensor& scores, bool real);
// weight · mean |x - y| (the cycle and identity terms).
torch::Tensor weighted_l1(const torch::Tensor& x, const torch::Tensor& y, double weight);

// The generators' objective for one (a, b) batch: the reconstructions F(G(a)) and G(F(b)) are computed
// from the same fakes the discriminators score.
struct GeneratorTerms {
  torch::Tensor fake_a, fake_b;          // F(b), G(a): with their graphs
  torch::Tensor total;                   // what G and F minimise: the sum of the terms below
  torch::Tensor gan_g, gan_f;            // D_B(G(a)) towards real, D_A(F(b)) towards real
  torch::Tensor cycle_a, cycle_b;        // λ |F(G(a)) - a|, λ |G(F(b)) - b|
  torch::Tensor identity_a, identity_b;  // λ·identity |F(a) - a|, |G(b) - b| (undefined when off)
};
GeneratorTerms generator_terms(Generator& g, Generator& f, Discriminator& d_a, Discriminator& d_b,
                               const torch::Tensor& a, const torch::Tensor& b, const LossWeights& w);

// A discriminator's loss: ½ (real towards 1 + fake towards 0), the reference's halving so D learns at
// half the generators' rate.
torch::Tensor discriminator_loss(Discriminator& d, const torch::Tensor& real, const torch::Tensor& fake);

}  // namespace gantry::cyclegan
