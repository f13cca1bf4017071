#include "cyclegan/cyclegan_losses.h"

#include <torch/torch.h>

namespace gantry::cyclegan {

torch::Tensor lsgan_loss(const torch::Tensor& scores, bool real) {
  return real ? (scores - 1.0).pow(2).mean() : scores.pow(2).mean();
}

torch::Tensor weighted_l1(const torch::Tensor& x, const torch::Tensor& y, double weight) {
  return (x - y).abs().mean() * weight;
}

GeneratorTerms generator_terms(Generator& g, Generator& f, Discriminator& d_a, Discriminator& d_b,
                               const torch::Tensor& a, const torch::Tensor& b, const LossWeights& w) {
  GeneratorTerms t;
  t.fake_b = g->forward(a);
  t.fake_a = f->forward(b);
  t.gan_g = lsgan_loss(d_b->forward(t.fake_b), true);
  t.gan_f = lsgan_loss(d_a->forward(t.fake_a), true);
  t.cycle_a = weighted_l1(f->forward(t.fake_b), a, w.cycle);
  t.cycle_b = weighted_l1(g->forward(t.fake_a), b, w.cycle);
  t.total = t.gan_g + t.gan_f + t.cycle_a + t.cycle_b;
  if (w.identity > 0) {
    t.identity_a = weighted_l1(f->forward(a), a, w.cycle * w.identity);
    t.identity_b = weighted_l1(g->forward(b), b, w.cycle * w.identity);
    t.total = t.total + t.identity_a + t.identity_b;
  }
  return t;
}

torch::Tensor discriminator_loss(Discriminator& d, const torch::Tensor& real, const torch::Tensor& fake) {
  return (lsgan_loss(d->forward(real), true) + lsgan_loss(d->forward(fake.detach()), false)) * 0.5;
}

}  // namespace gantry::cyclegan
