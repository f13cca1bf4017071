// fgan_update_bench: the f-GAN recipe's single-step update (Algorithm 1: one forward, one backward, one
// reduction of both players' gradients) against its alternating update (V step, then G step: two
// reductions, V run a second time on the generated batch), side by side in one run.
//
//   mpiexec -n 2 build/fgan_update_bench [--model mlp|dcgan] [--batch 512] [--steps 20] [--rounds 5]
//                                        [--divergence gan] [--objective practical] [--bucket-mb 25] [--first-bucket-mb
//                                        25]
//
// The recipe is built as the trainer builds it (same seed, rank 0's state broadcast, GradSync with the
// given buckets, overlap off as on CPUs), on a communicator that counts all-reduces. Batches are
// random images of the model's shape (mlp: 1x28x28, the paper's MNIST pair; dcgan: 3x64x64, the LSUN
// setting), this rank's share of --batch. Rounds alternate the two modes; each times --steps steps
// after 2 warm-up steps, between barriers. Reported per mode: collectives per step, bytes reduced per
// step, median and best ms per step; and the ratio alternating / single of the medians.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/counting_communicator.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"
#include "dist/mpi_runtime.h"
#include "fgan/fgan_recipe.h"
#include "train/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model = "mlp", divergence = "gan", objective = "practical";
  int64_t batch = 512, steps = 20, rounds = 5;
  double bucket_mb = 25, first_bucket_mb = 25;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) throw gantry::UsageError(a + ": missing value");
    std::string v = argv[++i];
    if (a == "--model")
      o.model = v;
    else if (a == "--divergence")
      o.divergence = v;
    else if (a == "--objective")
      o.objective = v;
    else if (a == "--batch")
      o.batch = std::atoll(v.c_str());
    else if (a == "--steps")
      o.steps = std::atoll(v.c_str());
    else if (a == "--rounds")
      o.rounds = std::atoll(v.c_str());
    else if (a == "--bucket-mb")
      o.bucket_mb = std::atof(v.c_str());
    else if (a == "--first-bucket-mb")
      o.first_bucket_mb = std::atof(v.c_str());
    else
      throw gantry::UsageError(a + ": unknown option");
  }
  return o;
}

struct Result {
  std::vector<double> ms;  // per round
  double collectives = 0, bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
  gantry::MpiRuntime mpi(argc, argv);
  const gantry::DistContext ctx = mpi.context();
  try {
    const Options o = parse(argc, argv);
    at::set_num_threads(gantry::intra_op_threads(ctx, 0));
    auto comm = gantry::make_communicator("mpi");
    gantry::CountingCommunicator counting(*comm);
    const gantry::DataShape shape =
        o.model == "dcgan" ? gantry::DataShape{3, 64, 64, false} : gantry::DataShape{1, 28, 28, false};
    if (o.batch % ctx.world_size != 0) throw gantry::UsageError("--batch: must divide by the world size");
    const int64_t local = o.batch / ctx.world_size;

    gantry::Schema schema;
    gantry::add_common_keys(schema, {"fgan"});
    gantry::fgan::recipe_info().add_keys(schema);
    std::map<std::string, Result> results;
    for (int64_t round = 0; round < o.rounds; ++round) {
      for (const std::string mode : {"single", "alternating"}) {
        gantry::Config c(schema);
        c.set("run.recipe", "fgan");
        c.set("fgan.model", o.model);
        c.set("fgan.update", mode);
        c.set("fgan.divergence", o.divergence);
        c.set("fgan.generator_objective", o.objective);
        c.set("train.lr", "2e-4");
        gantry::GradSyncOptions so;
        so.bucket_bytes = static_cast<int64_t>(o.bucket_mb * (1 << 20));
        so.first_bucket_bytes = static_cast<int64_t>(o.first_bucket_mb * (1 << 20));
        so.overlap = false;
        gantry::GradSync sync(counting, so);
        torch::manual_seed(1);
        gantry::StepContext step_context(sync, gantry::StepOptions{});
        auto recipe = gantry::fgan::recipe_info().create(
            gantry::RecipeEnv{c, {{gantry::kMainStream, shape}}, torch::kCPU, counting, sync, step_context});
        for (const auto& [name, net] : recipe->networks()) gantry::broadcast_state(counting, *net);
        auto batch_at = [&](int64_t step) {
          auto gen = gantry::batch_generator(7, 0, gantry::DataPosition{0, step * o.batch});
          auto images = at::rand({local, shape.channels, shape.height, shape.width}, gen, torch::kFloat32) * 2 - 1;
          return gantry::StepBatches{
              {gantry::kMainStream, gantry::Batch{images, {}, gantry::DataPosition{0, step * o.batch}}}};
        };
        for (int64_t s = 0; s < 2; ++s) recipe->train_step(batch_at(s));
        counting.barrier();
        counting.reset();
        const auto t0 = Clock::now();
        for (int64_t s = 0; s < o.steps; ++s) recipe->train_step(batch_at(2 + s));
        counting.barrier();
        const double ms = 1e3 * std::chrono::duration<double>(Clock::now() - t0).count() / static_cast<double>(o.steps);
        Result& r = results[mode];
        r.ms.push_back(ms);
        r.collectives = static_cast<double>(counting.all_reduces) / static_cast<double>(o.steps);
        r.bytes = static_cast<double>(counting.all_reduce_bytes) / static_cast<double>(o.steps);
      }
    }
    if (ctx.rank == 0) {
      std::printf(
          "f-GAN update, model %s, divergence %s, objective %s, %d ranks x %lld samples, %d threads each, "
          "buckets %.0f/%.0f MiB, %lld steps x %lld rounds\n",
          o.model.c_str(), o.divergence.c_str(), o.objective.c_str(), ctx.world_size, static_cast<long long>(local),
          at::get_num_threads(), o.bucket_mb, o.first_bucket_mb, static_cast<long long>(o.steps),
          static_cast<long long>(o.rounds));
      std::map<std::string, double> median;
      for (auto& [mode, r] : results) {
        std::vector<double> v = r.ms;
        std::sort(v.begin(), v.end());
        median[mode] = v[v.size() / 2];
        std::printf("  %-11s %.2f all-reduces/step, %.2f MiB reduced/step, %.1f ms/step median, %.1f best\n",
                    mode.c_str(), r.collectives, r.bytes / (1 << 20), median[mode], v.front());
      }
      std::printf("  alternating / single time per step: %.3f\n", median["alternating"] / median["single"]);
    }
    return 0;
  } catch (const gantry::Error& e) {
    std::fprintf(stderr, "fgan_update_bench: %s\n", e.what());
    return static_cast<int>(e.code());
  }
}
