// FusedAdam against torch::optim::Adam: the same parameters and moments (to 1e-6) over 100 steps with
// the options recipes use, with gradients as GradSync bucket views (read in place) and without (gathered),
// one GradSync group shared by two optimizers (f-GAN's G+V), micro-batches and clipping through
// StepContext; checkpoints that load into a plain Adam and back; a parameter whose storage a checkpoint
// load replaced.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/torch_compat.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/fused_adam.h"
#include "train/step_context.h"

namespace gantry {
namespace {

using torch::optim::Adam;
using torch::optim::AdamOptions;

torch::nn::Sequential mlp(int64_t in, int64_t hidden, int64_t out, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(in, hidden), torch::nn::Tanh(), torch::nn::Linear(hidden, hidden),
                               torch::nn::Tanh(), torch::nn::Linear(hidden, out));
}

double max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

// Each parameter's Adam moments, in parameter order (works for either optimizer: same state layout).
std::vector<torch::Tensor> moments(torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) {
    auto& st = static_cast<torch::optim::AdamParamState&>(*opt.state().at(compat::optim_state_key(p)));
    out.push_back(st.exp_avg());
    out.push_back(st.exp_avg_sq());
    if (st.max_exp_avg_sq().defined()) out.push_back(st.max_exp_avg_sq());
  }
  return out;
}

torch::Tensor batch(int64_t step, int64_t rows, int64_t cols) {
  torch::manual_seed(1000 + static_cast<uint64_t>(step));
  return torch::randn({rows, cols});
}

struct Case {
  const char* name;
  AdamOptions options;
};

std::vector<Case> recipe_cases() {
  return {{"recipe betas (0.5, 0.999)", AdamOptions(1e-3).betas({0.5, 0.999})},
          {"defaults", AdamOptions(2e-3)},
          {"weight decay", AdamOptions(1e-3).betas({0.9, 0.99}).weight_decay(1e-2)},
          {"amsgrad + eps", AdamOptions(5e-3).amsgrad(true).eps(1e-6)}};
}

TEST(FusedAdam, MatchesAdamOver100StepsWithGatheredGradients) {
  for (const auto& c : recipe_cases()) {
    SCOPED_TRACE(c.name);
    auto ref = mlp(3, 16, 2, 7), fused = mlp(3, 16, 2, 7);
    Adam ref_opt(ref->parameters(), c.options);
    FusedAdam fused_opt(fused->parameters(), c.options);
    for (int64_t step = 0; step < 100; ++step) {
      auto x = batch(step, 32, 3);
      for (auto* o : std::initializer_list<torch::optim::Optimizer*>{&ref_opt, &fused_opt}) o->zero_grad();
      ref->forward(x).pow(2).mean().backward();
      fused->forward(x).pow(2).mean().backward();
      ref_opt.step();
      fused_opt.step();
    }
    EXPECT_LE(max_diff(ref->parameters(), fused->parameters()), 1e-6);
    EXPECT_LE(max_diff(moments(ref_opt, ref->parameters()), moments(fused_opt, fused->parameters())), 1e-6);
    EXPECT_GT(max_diff(ref->parameters(), mlp(3, 16, 2, 7)->parameters()), 1e-3);  // it did train
    EXPECT_EQ(fused_opt.stats().fallback_steps, 0);
    EXPECT_EQ(fused_opt.stats().gathered_group_steps, 100);  // fresh gradient tensors: copied in once
    EXPECT_EQ(fused_opt.stats().layouts, 1);
  }
}

// The recipes' path: StepContext with GradSync (bucket views, several buckets), micro-batches and
// clipping; the reference is the same pipeline with torch::optim::Adam.
TEST(FusedAdam, MatchesAdamThroughStepContextWithBucketViews) {
  for (const auto& c : recipe_cases()) {
    SCOPED_TRACE(c.name);
    auto comm = make_world_of_one();
    auto ref = mlp(5, 32, 3, 11), fused = mlp(5, 32, 3, 11);
    GradSyncOptions small;  // several buckets: the group's gradients still tile one buffer
    small.bucket_bytes = 2048;
    small.first_bucket_bytes = 512;
    GradSync ref_sync(*comm, small), fused_sync(*comm, small);
    ref_sync.add_group("net", {ref.ptr()});
    fused_sync.add_group("net", {fused.ptr()});
    ASSERT_GT(fused_sync.bucket_bytes("net").size(), 2u);
    StepOptions so;
    so.micro_batches = 2;
    so.clip_grad_norm = 0.5;
    StepContext ref_ctx(ref_sync, so), fused_ctx(fused_sync, so);
    Adam ref_opt(ref->parameters(), c.options);
    FusedAdam fused_opt(fused->parameters(), c.options);
    for (int64_t step = 0; step < 100; ++step) {
      auto x = batch(step, 16, 5);
      auto run = [&](StepContext& ctx, torch::nn::Sequential& net, torch::optim::Optimizer& opt) {
        return ctx.update("net", {&opt}, [&](int64_t k) {
          return Losses{{"loss", net->forward(ctx.micro(x, k)).pow(2).mean()}};
        });
      };
      auto a = run(ref_ctx, ref, ref_opt), b = run(fused_ctx, fused, fused_opt);
      ASSERT_NEAR(a[0].second.item<double>(), b[0].second.item<double>(), 1e-6) << "step " << step;
    }
    EXPECT_LE(max_diff(ref->parameters(), fused->parameters()), 1e-6);
    EXPECT_LE(max_diff(moments(ref_opt, ref->parameters()), moments(fused_opt, fused->parameters())), 1e-6);
    EXPECT_EQ(fused_opt.stats().in_place_group_steps, 100);  // read GradSync's buffer in place
    EXPECT_EQ(fused_opt.stats().gathered_group_steps, 0);
    EXPECT_EQ(fused_opt.stats().fallback_steps, 0);
  }
}

// f-GAN's single step: one GradSync group "G+V" covering both players, each with its own optimizer.
TEST(FusedAdam, TwoOptimizersShareOneGradSyncGroup) {
  auto comm = make_world_of_one();
  auto g_ref = mlp(1, 8, 1, 3), v_ref = mlp(1, 16, 1, 4), g = mlp(1, 8, 1, 3), v = mlp(1, 16, 1, 4);
  GradSync ref_sync(*comm), sync(*comm);
  ref_sync.add_group("G+V", {g_ref.ptr(), v_ref.ptr()});
  sync.add_group("G+V", {g.ptr(), v.ptr()});
  StepContext ref_ctx(ref_sync, {}), ctx(sync, {});
  const auto options = AdamOptions(1e-3).betas({0.5, 0.999});
  Adam ref_g(g_ref->parameters(), options), ref_v(v_ref->parameters(), options);
  FusedAdam opt_g(g->parameters(), options), opt_v(v->parameters(), options);
  auto run = [](StepContext& c, torch::nn::Sequential& G, torch::nn::Sequential& V, torch::optim::Optimizer& og,
                torch::optim::Optimizer& ov, int64_t step) {
    return c.update("G+V", {&ov, &og}, [&](int64_t) {
      auto real = batch(step, 64, 1) * 0.5 + 1.0, fake = G->forward(batch(step + 500, 64, 1));
      // V ascends the gap, G descends V's score on its samples (one loss, both players' gradients)
      auto loss = V->forward(fake).mean() - V->forward(real).mean() + V->forward(fake.detach()).pow(2).mean();
      return Losses{{"loss", loss}};
    });
  };
  for (int64_t step = 0; step < 100; ++step) {
    run(ref_ctx, g_ref, v_ref, ref_g, ref_v, step);
    run(ctx, g, v, opt_g, opt_v, step);
  }
  EXPECT_LE(max_diff(g_ref->parameters(), g->parameters()), 1e-6);
  EXPECT_LE(max_diff(v_ref->parameters(), v->parameters()), 1e-6);
  for (auto* o : {&opt_g, &opt_v}) {
    EXPECT_EQ(o->stats().in_place_group_steps, 100);  // each player's gradients: one range of the group
    EXPECT_EQ(o->stats().fallback_steps, 0);
  }
}

std::string bytes_of(const torch::optim::Optimizer& opt) { return save_to_bytes(opt); }

void load_bytes(torch::optim::Optimizer& opt, const std::string& bytes) {
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  opt.load(archive);
}

// Ten steps, a checkpoint, ten more: the run that switched optimizer at the checkpoint matches the one
// that did not (both directions), and a plain Adam reads FusedAdam's state from its archive exactly.
TEST(FusedAdam, CheckpointsLoadIntoPlainAdamAndBack) {
  const auto options = AdamOptions(1e-3).betas({0.5, 0.999}).weight_decay(1e-3);
  auto train = [](torch::nn::Sequential& net, torch::optim::Optimizer& opt, int64_t from, int64_t to) {
    for (int64_t step = from; step < to; ++step) {
      opt.zero_grad();
      net->forward(batch(step, 32, 3)).pow(2).mean().backward();
      opt.step();
    }
  };
  auto copy_weights = [](torch::nn::Sequential& to, torch::nn::Sequential& from) {
    torch::NoGradGuard no_grad;
    auto a = to->parameters(), b = from->parameters();
    for (size_t i = 0; i < a.size(); ++i) a[i].copy_(b[i]);
  };
  for (bool fused_first : {true, false}) {
    SCOPED_TRACE(fused_first ? "FusedAdam -> Adam" : "Adam -> FusedAdam");
    auto straight = mlp(3, 16, 2, 9), switched = mlp(3, 16, 2, 9);
    std::unique_ptr<torch::optim::Optimizer> first, straight_opt;
    if (fused_first) {
      first = std::make_unique<FusedAdam>(switched->parameters(), options);
      straight_opt = std::make_unique<FusedAdam>(straight->parameters(), options);
    } else {
      first = std::make_unique<Adam>(switched->parameters(), options);
      straight_opt = std::make_unique<Adam>(straight->parameters(), options);
    }
    train(switched, *first, 0, 10);
    const std::string saved = bytes_of(*first);
    // A fresh network and the other optimizer type, as a resumed run builds them.
    auto resumed = mlp(3, 16, 2, 1);
    copy_weights(resumed, switched);
    std::unique_ptr<torch::optim::Optimizer> second;
    if (fused_first)
      second = std::make_unique<Adam>(resumed->parameters(), options);
    else
      second = std::make_unique<FusedAdam>(resumed->parameters(), options);
    load_bytes(*second, saved);
    train(straight, *straight_opt, 0, 20);
    train(resumed, *second, 10, 20);
    EXPECT_LE(max_diff(straight->parameters(), resumed->parameters()), 1e-6);
    EXPECT_LE(max_diff(moments(*straight_opt, straight->parameters()), moments(*second, resumed->parameters())),
              1e-6);
    for (const auto& p : resumed->parameters())
      EXPECT_EQ(static_cast<torch::optim::AdamParamState&>(*second->state().at(compat::optim_state_key(p))).step(),
                20);
  }
  // The archive holds FusedAdam's state exactly: a plain Adam loads the same steps and moments.
  auto net = mlp(3, 16, 2, 5);
  FusedAdam fused(net->parameters(), options);
  train(net, fused, 0, 5);
  Adam plain(net->parameters(), options);
  load_bytes(plain, bytes_of(fused));
  EXPECT_EQ(max_diff(moments(plain, net->parameters()), moments(fused, net->parameters())), 0.0);
  EXPECT_EQ(plain.param_groups()[0].options().get_lr(), 1e-3);
}

// The network's own archive (a checkpoint's <network>.pt) once its parameters are views of FusedAdam's
// flat buffer: the same values under the same keys, and no bigger (the shared storage is written once).
TEST(FusedAdam, NetworkArchiveKeepsItsSize) {
  auto net = mlp(3, 64, 2, 8);
  std::ostringstream before;
  torch::save(net, before);
  FusedAdam opt(net->parameters(), AdamOptions(1e-3));
  opt.zero_grad();
  net->forward(batch(0, 8, 3)).sum().backward();
  opt.step();
  ASSERT_EQ(opt.stats().layouts, 1);
  std::ostringstream after;
  torch::save(net, after);
  EXPECT_LE(after.str().size(), before.str().size() + 256);
  auto loaded = mlp(3, 64, 2, 99);
  std::istringstream in(after.str());
  torch::load(loaded, in);
  EXPECT_EQ(max_diff(loaded->parameters(), net->parameters()), 0.0);
}

// A checkpoint load replaces a parameter's storage (InputArchive::read uses set_): the next step sees
// that the parameter left the flat buffer, rebuilds the layout, and still matches Adam.
TEST(FusedAdam, RebuildsWhenAParameterIsReplaced) {
  auto ref = mlp(3, 16, 2, 21), fused = mlp(3, 16, 2, 21);
  Adam ref_opt(ref->parameters(), AdamOptions(1e-3));
  FusedAdam fused_opt(fused->parameters(), AdamOptions(1e-3));
  for (int64_t step = 0; step < 40; ++step) {
    if (step == 20) {
      std::ostringstream out;
      torch::save(fused, out);
      std::istringstream in(out.str());
      torch::load(fused, in);
    }
    for (auto* o : std::initializer_list<torch::optim::Optimizer*>{&ref_opt, &fused_opt}) o->zero_grad();
    ref->forward(batch(step, 8, 3)).sum().backward();
    fused->forward(batch(step, 8, 3)).sum().backward();
    ref_opt.step();
    fused_opt.step();
  }
  EXPECT_LE(max_diff(ref->parameters(), fused->parameters()), 1e-6);
  EXPECT_EQ(fused_opt.stats().layouts, 2);
  EXPECT_EQ(fused_opt.stats().fallback_steps, 0);
}

// A parameter without a gradient: torch::optim::Adam skips it; so does FusedAdam (exactly, by falling
// back to Adam's own per-parameter step), and it fuses again once the counts agree.
TEST(FusedAdam, ParameterWithoutGradientFallsBackExactly) {
  torch::manual_seed(2);
  auto a = torch::randn({4}, torch::requires_grad()), b = torch::randn({3}, torch::requires_grad());
  auto a2 = a.detach().clone().requires_grad_(), b2 = b.detach().clone().requires_grad_();
  Adam ref({a, b}, AdamOptions(1e-2));
  FusedAdam fused({a2, b2}, AdamOptions(1e-2));
  for (int64_t step = 0; step < 30; ++step) {
    const bool only_a = step >= 10 && step < 15;
    for (auto* t : {&a, &b, &a2, &b2}) t->mutable_grad() = torch::Tensor();
    ((a * a).sum() + (only_a ? torch::zeros({}) : (b * b * b).sum())).backward();
    ((a2 * a2).sum() + (only_a ? torch::zeros({}) : (b2 * b2 * b2).sum())).backward();
    ref.step();
    fused.step();
  }
  EXPECT_LE(max_diff({a, b}, {a2, b2}), 1e-6);
  EXPECT_EQ(fused.stats().fallback_steps, 5 + 15);  // b's count lags a's from step 10 on: never fusable again
}

}  // namespace
}  // namespace gantry
