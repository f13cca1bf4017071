// cyclegan_step_bench: CycleGAN's training step exactly as the trainer runs it at world size one — the
// recipe object (both generators in one update, both discriminators in the next, the image pools,
// StepContext, GradSync, FusedAdam) on a fixed pair of batches whose data position advances each step —
// timed next to the same model in Python (cyclegan_step.py, cyclegan_step_vs_python.sh).
//   cyclegan_step_bench RESOLUTION BATCH THREADS STEPS [WIDTH=64]
// The paper's setting is 256 1 (9 residual blocks; 6 below 256), WIDTH the generators' and
// discriminators' first-layer channels. Time covers STEPS steps after 2 warm-up steps. Prints the first
// step's losses (the networks, their initialisation and the losses before any update: C++ and Python on
// the same LibTorch print the same) and the last step's, which must be finite.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cyclegan/cyclegan_recipe.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/train_options.h"

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    std::fprintf(stderr, "usage: cyclegan_step_bench RESOLUTION BATCH THREADS STEPS [WIDTH=64]\n");
    return 2;
  }
  const int64_t res = std::atoll(argv[1]), batch = std::atoll(argv[2]), steps = std::atoll(argv[4]);
  const std::string width = argc == 6 ? argv[5] : "64";
  at::set_num_threads(std::atoi(argv[3]));
  const gantry::RecipeInfo info = gantry::cyclegan::recipe_info();
  gantry::Schema schema;
  gantry::add_common_keys(schema, {info.name});
  info.add_keys(schema);
  gantry::Config c(schema);
  c.set("run.recipe", info.name);
  c.set("train.lr", "2e-4");
  c.set("cyclegan.g_width", width);
  c.set("cyclegan.d_width", width);

  auto comm = gantry::make_world_of_one();
  gantry::GradSync sync(*comm, gantry::GradSyncOptions{});
  gantry::StepContext step_context(sync, gantry::StepOptions{});
  const gantry::DataShape shape{3, res, res, false};
  torch::manual_seed(0);
  auto recipe = info.create(gantry::RecipeEnv{
      c, {{gantry::kMainStream, shape}, {gantry::cyclegan::kStreamB, shape}}, torch::kCPU, *comm, sync, step_context});
  const torch::Tensor a = torch::rand({batch, 3, res, res}) * 2 - 1, b = torch::rand({batch, 3, res, res}) * 2 - 1;
  int64_t position = 0;
  auto step = [&] {
    const gantry::DataPosition at{0, position};
    position += batch;
    return recipe->train_step(
        {{gantry::kMainStream, gantry::Batch{a, {}, at}}, {gantry::cyclegan::kStreamB, gantry::Batch{b, {}, at}}});
  };
  auto value = [](const gantry::Losses& l, const std::string& name) {
    for (const auto& [k, v] : l)
      if (k == name) return v.item<double>();
    return std::nan("");
  };
  const gantry::Losses first = step();
  step();
  const auto t0 = std::chrono::steady_clock::now();
  gantry::Losses last;
  for (int64_t i = 0; i < steps; ++i) last = step();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ld = value(last, "loss_d"), lg = value(last, "loss_g");
  if (!std::isfinite(ld) || !std::isfinite(lg)) {
    std::fprintf(stderr, "cyclegan_step_bench: losses not finite (D %g, G %g)\n", ld, lg);
    return 1;
  }
  std::printf(
      "C++    cyclegan %lldx%lld batch %lld width %s threads %d: %.1f ms/step, %.2f images/s "
      "(first loss D %.5f G %.5f) (last loss D %.4f G %.4f)\n",
      static_cast<long long>(res), static_cast<long long>(res), static_cast<long long>(batch), width.c_str(),
      at::get_num_threads(), 1e3 * s / static_cast<double>(steps), static_cast<double>(batch * steps) / s,
      value(first, "loss_d"), value(first, "loss_g"), ld, lg);
  return 0;
}
