// recipe_step_bench: one recipe's training step exactly as the trainer runs it at world size one — the
// recipe object (its own update code, StepContext, GradSync, the recipe's optimizer), a world-of-one
// communicator — on a fixed batch, so it can be timed beside the same model in Python
// (recipe_step_vs_python.sh, with fgan1d_step.py and vae_step.py).
//   recipe_step_bench fgan1d|vae STEPS [THREADS=1] [--malloc-default]
// As the gantry executable, it first keeps freed heap memory for reuse (core/memory.h);
// --malloc-default leaves glibc's malloc thresholds as they are (the "before" of that change).
// fgan1d: f-GAN's 1-D Gaussian-mixture run (experiments/fgan_gauss_mixture.ini: single-step update, KL,
// saddle objective, V 1-64-64-1 tanh, Adam 1e-3 / beta1 0.5), batch 1024.
// vae:    the MLP VAE 784-400-20 (experiments/vae_fashion_mnist.ini's model), Adam 1e-3, batch 128.
// Prints ms/step (median of 5 blocks of STEPS/5 after 20 warm-up steps) and the process's user and
// system CPU seconds over the timed steps.
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/memory.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "fgan/fgan_recipe.h"
#include "fgan/gauss_mixture.h"
#include "fgan/mixture_source.h"
#include "train/trainer.h"
#include "vae/vae_recipe.h"

namespace {

struct Usage {
  double user = 0, sys = 0;
  long minor_faults = 0;
};
Usage usage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return {s(u.ru_utime), s(u.ru_stime), u.ru_minflt};
}

}  // namespace

int main(int argc, char** argv) {
  const bool malloc_default = argc > 1 && std::string(argv[argc - 1]) == "--malloc-default";
  if (malloc_default) --argc;
  if (argc < 3 || argc > 4 || (std::string(argv[1]) != "fgan1d" && std::string(argv[1]) != "vae")) {
    std::fprintf(stderr, "usage: recipe_step_bench fgan1d|vae STEPS [THREADS] [--malloc-default]\n");
    return 2;
  }
  if (!malloc_default) gantry::keep_freed_memory();
  const std::string which = argv[1];
  const int64_t steps = std::max<int64_t>(5, std::atoll(argv[2]));
  at::set_num_threads(argc == 4 ? std::atoi(argv[3]) : 1);
  const bool fgan = which == "fgan1d";
  const gantry::RecipeInfo info = fgan ? gantry::fgan::recipe_info() : gantry::vae::recipe_info();

  gantry::Schema schema;
  gantry::add_common_keys(schema, {info.name});
  info.add_keys(schema);
  gantry::Config c(schema);
  c.set("run.recipe", info.name);
  c.set("train.lr", "1e-3");
  if (fgan) {  // experiments/fgan_gauss_mixture.ini's [fgan]
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"model", "gaussian"},
                                                                               {"divergence", "kl"},
                                                                               {"update", "single"},
                                                                               {"generator_objective", "saddle"},
                                                                               {"v_hidden", "64"},
                                                                               {"v_init", "0"},
                                                                               {"beta1", "0.5"}})
      c.set("fgan." + k, v);
  } else {
    c.set("vae.likelihood", "bernoulli");  // vae_step.py's decoder (the step measured in RESULTS.md)
  }
  const int64_t batch = fgan ? 1024 : 128;
  const gantry::DataShape shape = fgan ? gantry::DataShape{1, 1, 1, false} : gantry::DataShape{1, 28, 28, false};

  auto comm = gantry::make_world_of_one();
  gantry::GradSync sync(*comm, gantry::GradSyncOptions{});
  gantry::StepContext step_context(sync, gantry::StepOptions{});
  torch::manual_seed(0);
  auto recipe = info.create(gantry::RecipeEnv{c, {{gantry::kMainStream, shape}}, torch::kCPU, *comm, sync, step_context});
  torch::Tensor images;
  if (fgan) {
    auto gen = gantry::batch_generator(1, 0, gantry::DataPosition{0, 0});
    images = gantry::fgan::sample_mixture(gantry::fgan::paper_mixture(), batch, gen).reshape({-1, 1, 1, 1});
  } else {
    images = torch::rand({batch, 1, 28, 28}) * 2 - 1;
  }
  int64_t position = 0;
  auto step = [&] {
    gantry::StepBatches b{{gantry::kMainStream, gantry::Batch{images, {}, gantry::DataPosition{0, position}}}};
    position += batch;
    return recipe->train_step(b);
  };
  for (int i = 0; i < 20; ++i) step();
  std::vector<double> ms;
  const Usage before = usage();
  const int64_t block = steps / 5;
  gantry::Losses last;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < block; ++i) last = step();
    ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                 static_cast<double>(block));
  }
  const Usage after = usage();
  std::sort(ms.begin(), ms.end());
  std::printf(
      "C++    %s batch %lld threads %d: %.4f ms/step (blocks %.4f..%.4f), user %.2f s, sys %.2f s, %.1f page faults/step, "
      "%s %.4f%s\n",
      which.c_str(), static_cast<long long>(batch), at::get_num_threads(), ms[2], ms.front(), ms.back(),
      after.user - before.user, after.sys - before.sys,
      static_cast<double>(after.minor_faults - before.minor_faults) / static_cast<double>(5 * block),
      last.front().first.c_str(), last.front().second.item<double>(), malloc_default ? " (malloc default)" : "");
  return 0;
}
