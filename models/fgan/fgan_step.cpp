#include "fgan/fgan_step.h"

#include <torch/torch.h>

#include <stdexcept>

namespace gantry::fgan {

namespace {

struct ScaleGradient : public torch::autograd::Function<ScaleGradient> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double scale) {
    ctx->saved_data["scale"] = scale;
    return x.clone();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const double scale = ctx->saved_data["scale"].toDouble();
    torch::Tensor g = scale == 0.0 ? torch::Tensor() : grad[0] * scale;
    return {g, torch::Tensor()};
  }
};

}  // namespace

GeneratorObjective objective_by_name(const std::string& name) {
  if (name == "saddle") return GeneratorObjective::kSaddle;
  if (name == "practical") return GeneratorObjective::kPractical;
  throw std::invalid_argument("unknown generator objective '" + name + "' (saddle or practical)");
}

ObjectiveTerms objective(const Divergence& div, const torch::Tensor& v_real, const torch::Tensor& v_fake) {
  torch::Tensor real_T = div.activation_t(v_real).mean(), fake_conj_T = div.conjugate_of_activation_t(v_fake).mean();
  return {real_T - fake_conj_T, real_T, fake_conj_T};
}

torch::Tensor generator_loss(const Divergence& div, GeneratorObjective generator_objective, const torch::Tensor& v_fake) {
  return generator_objective == GeneratorObjective::kSaddle ? -div.conjugate_of_activation_t(v_fake).mean()
                                                  : -div.activation_t(v_fake).mean();
}

torch::Tensor scale_gradient(const torch::Tensor& x, double scale) { return ScaleGradient::apply(x, scale); }

ObjectiveTerms single_step_backward(const Divergence& div, GeneratorObjective generator_objective, const Function& V,
                                const torch::Tensor& real, const torch::Tensor& fake, const Function& scale_loss) {
  auto scaled = [&](const torch::Tensor& loss) { return scale_loss ? scale_loss(loss) : loss; };
  const bool saddle = generator_objective == GeneratorObjective::kSaddle;
  // Saddle: the reversal turns −F's gradient into +∇_θ F for G. Practical: closed, G's gradient comes
  // from the second root below.
  torch::Tensor fake_in = scale_gradient(fake, saddle ? -1.0 : 0.0);
  torch::Tensor v_real = V(real), v_fake = V(fake_in);  // this order: V's BatchNorm statistics see real first
  const ObjectiveTerms terms = objective(div, v_real, v_fake);
  torch::Tensor loss = scaled(-terms.F);
  if (saddle) {
    loss.backward();
  } else {
    // ∂(−E_Q[g_f(V(x))])/∂x on the generated batch, through V without touching V's gradients.
    torch::Tensor g_loss = scaled(generator_loss(div, generator_objective, v_fake));
    torch::Tensor d_fake = torch::autograd::grad({g_loss}, {fake_in}, {}, /*retain_graph=*/true)[0];
    torch::autograd::backward({loss, fake}, {torch::ones_like(loss), d_fake});
  }
  return terms.detached();
}

}  // namespace gantry::fgan
