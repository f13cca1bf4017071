// The f-GAN objective and its gradient passes (Nowozin, Cseke & Tomioka 2016).
//
//   F(θ, ω) = E_P[g_f(V_ω(x))] − E_{Q_θ}[f*(g_f(V_ω(x)))]     (minibatch: B real, B generated samples)
//
// V_ω ascends F, the generator θ descends it. The single-step method (the paper's Algorithm 1) takes
// both gradients at the same (θ, ω) from one forward and one backward: the generated batch passes a
// gradient reversal on its way into V, so the backward of −F leaves −∇_ω F in V's gradients and
// +∇_θ F in G's — an optimizer minimising "its loss" then moves ω up and θ down F, both at once, and a
// data-parallel run reduces both players' gradients in a single pass (GradSync group "G+V").
//
// Generator objectives:
//   saddle     θ descends F itself (Algorithm 1 as written; for GAN this is the saturating
//              E_Q[log(1 − D)] objective).
//   practical  θ ascends E_Q[g_f(V_ω(G(z)))] (the paper's generalisation of the −log D trick, stronger
//              gradients early in training). In the single step, the generator's gradient then comes
//              from a different function of the same V outputs: it is taken first with respect to the
//              generated batch only (no parameter gradients) and fed into the one backward as a second
//              root, while the reversal is closed (scale 0) so −F's gradient reaches only V.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>

#include "fgan/divergence.h"

namespace gantry::fgan {

enum class GeneratorObjective { kSaddle, kPractical };
GeneratorObjective objective_by_name(const std::string& name);  // "saddle" | "practical"

// Minibatch estimate of F from V's outputs on real (B) and generated (B') samples, with its two terms.
struct ObjectiveTerms {
  torch::Tensor F;            // E_P[g_f(V(x))] − E_Q[f*(g_f(V(x)))]
  torch::Tensor real_T;       // E_P[g_f(V(x))]
  torch::Tensor fake_conj_T;  // E_Q[f*(g_f(V(x)))]
  ObjectiveTerms detached() const { return {F.detach(), real_T.detach(), fake_conj_T.detach()}; }
};
ObjectiveTerms objective(const Divergence& div, const torch::Tensor& v_real, const torch::Tensor& v_fake);

// The generator's loss for alternating updates (minimised over θ): saddle −E_Q[f*(g_f(v))] (the part of F
// that depends on θ), practical −E_Q[g_f(v)].
torch::Tensor generator_loss(const Divergence& div, GeneratorObjective generator_objective, const torch::Tensor& v_fake);

// Identity in the forward pass; multiplies the gradient by `scale` in the backward pass (−1: gradient
// reversal; 0: no gradient flows back).
torch::Tensor scale_gradient(const torch::Tensor& x, double scale);

using Function = std::function<torch::Tensor(const torch::Tensor&)>;

// One gradient pass of Algorithm 1. `fake` = G(z) with its graph; V is the variational function.
// After it, V's parameters hold −∇_ω F and G's hold ∇_θ F (saddle) or −∇_θ E_Q[g_f(V(G(z)))] (practical),
// each multiplied through `scale_loss` (e.g. GradSync::average_loss). Exactly one backward pass
// reaches the parameters' gradient accumulators. Returns F and its terms at (θ, ω), detached.
ObjectiveTerms single_step_backward(const Divergence& div, GeneratorObjective generator_objective, const Function& V,
                                const torch::Tensor& real, const torch::Tensor& fake,
                                const Function& scale_loss = nullptr);

}  // namespace gantry::fgan
