// pixelcnn_step_bench: the PixelCNN recipe's training step as the trainer runs it at world size one (the
// recipe, StepContext, GradSync, FusedAdam), on a fixed uint8 batch, and its sampler; timed beside the
// same model in Python (pixelcnn_step.py, pixelcnn_step_vs_python.sh).
//   pixelcnn_step_bench ARCH C HW LAYERS HIDDEN OUT_HIDDEN BATCH STEPS THREADS SAMPLES
// ARCH residual|gated; the batch is (BATCH, HW, HW, C) uniform random bytes drawn after seeding 0 and
// building the network (as the Python side does). Prints ms/step (median of 5 blocks of STEPS/5 after 5
// warm-up steps), user/system CPU seconds over the timed steps, the last loss (bits/dim), and the
// seconds per image of drawing SAMPLES images in one batch (0: no sampling).
#include <ATen/CPUGeneratorImpl.h>
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
#include "pixelcnn/pixelcnn_recipe.h"
#include "train/train_options.h"

namespace {

double cpu_seconds(bool user) {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const timeval& t = user ? u.ru_utime : u.ru_stime;
  return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 11 || (std::string(argv[1]) != "residual" && std::string(argv[1]) != "gated")) {
    std::fprintf(
        stderr,
        "usage: pixelcnn_step_bench residual|gated C HW LAYERS HIDDEN OUT_HIDDEN BATCH STEPS THREADS SAMPLES\n");
    return 2;
  }
  gantry::keep_freed_memory();
  const std::string arch = argv[1];
  const int64_t c = std::atoll(argv[2]), hw = std::atoll(argv[3]), batch = std::atoll(argv[7]);
  const int64_t steps = std::max<int64_t>(5, std::atoll(argv[8])), samples = std::atoll(argv[10]);
  at::set_num_threads(std::atoi(argv[9]));

  const gantry::RecipeInfo info = gantry::pixelcnn::recipe_info();
  gantry::Schema schema;
  gantry::add_common_keys(schema, {info.name});
  info.add_keys(schema);
  gantry::Config config(schema);
  config.set("run.recipe", info.name);
  config.set("train.lr", "1e-3");
  config.set("pixelcnn.arch", arch);
  config.set("pixelcnn.layers", argv[4]);
  config.set("pixelcnn.hidden", argv[5]);
  config.set("pixelcnn.out_hidden", argv[6]);

  auto comm = gantry::make_world_of_one();
  gantry::GradSync sync(*comm, gantry::GradSyncOptions{});
  gantry::StepContext step_context(sync, gantry::StepOptions{});
  torch::manual_seed(0);
  auto recipe = info.create(gantry::RecipeEnv{
      config, {{gantry::kMainStream, gantry::DataShape{c, hw, hw, false}}}, torch::kCPU, *comm, sync, step_context});
  const torch::Tensor images = torch::randint(0, 256, {batch, hw, hw, c}, torch::kLong).to(torch::kUInt8);
  auto step = [&] {
    gantry::StepBatches b{{gantry::kMainStream, gantry::Batch{images, {}, {}}}};
    return recipe->train_step(b);
  };
  for (int i = 0; i < 5; ++i) step();
  std::vector<double> ms;
  const double user0 = cpu_seconds(true), sys0 = cpu_seconds(false);
  const int64_t block = std::max<int64_t>(1, steps / 5);
  gantry::Losses last;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < block; ++i) last = step();
    ms.push_back(1e3 * seconds_since(t0) / static_cast<double>(block));
  }
  const double user = cpu_seconds(true) - user0, sys = cpu_seconds(false) - sys0;
  std::sort(ms.begin(), ms.end());
  double per_image = 0;
  if (samples > 0) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    const auto t0 = std::chrono::steady_clock::now();
    recipe->sample(samples, gen);
    per_image = seconds_since(t0) / static_cast<double>(samples);
  }
  std::printf(
      "C++    pixelcnn %s %lldx%lldx%lld batch %lld threads %d: %.3f ms/step (blocks %.3f..%.3f), user %.2f s, sys "
      "%.2f s, sampling %.4f s/image (%lld at once) (loss %.4f)\n",
      arch.c_str(), static_cast<long long>(c), static_cast<long long>(hw), static_cast<long long>(hw),
      static_cast<long long>(batch), at::get_num_threads(), ms[2], ms.front(), ms.back(), user, sys, per_image,
      static_cast<long long>(samples), last.front().second.item<double>());
  return 0;
}
