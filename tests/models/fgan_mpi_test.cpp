// The f-GAN recipe under mpiexec -n 2 and -n 4: W ranks with B/W samples each take the same steps as
// one rank with the whole batch B (computed on every rank locally as the reference), and the single
// step makes one collective per step at any world size; the held-out F's variance over ranks.
#include <gtest/gtest.h>

#include <cmath>

#include "fgan/mixture_source.h"
#include "models/fgan_testing.h"

namespace gantry::fgan {
namespace {

using gantry::testing::fgan_config;
using gantry::testing::FganRun;
using gantry::testing::one_bucket;

std::unique_ptr<Communicator> mpi_comm() {
  CommOptions o;
  o.timeout_s = 120;
  return make_communicator("mpi", o);
}

torch::Tensor train(FganRun& run, const SourceSpec& spec, int steps) {
  MixtureSource source(paper_mixture(), spec, 0, {});
  for (int i = 0; i < steps; ++i) run.train_step(source.next());
  return run.parameters();
}

TEST(FganMpi, RanksWithHalfTheBatchMatchOneRankWithAllOfIt) {
  auto comm = mpi_comm();
  const int W = comm->world_size(), steps = 12;
  const int64_t global = 64;
  for (const char* update : {"single", "alternating"}) {
    for (const char* objective : {"saddle", "practical"}) {
      for (const char* div : {"kl", "reverse_kl", "gan"}) {
        Config c = fgan_config({{"fgan.model", "gaussian"},
                                {"fgan.v_hidden", "16"},
                                {"fgan.v_init", "0"},
                                {"fgan.update", update},
                                {"fgan.generator_objective", objective},
                                {"fgan.divergence", div},
                                {"train.lr", "0.01"}});
        FganRun parallel(c, *comm, {1, 1, 1, false}, one_bucket());
        auto got = train(parallel, SourceSpec{comm->rank(), W, global, 3}, steps);
        EXPECT_EQ(parallel.counting.all_reduces, steps * (std::string(update) == "single" ? 1 : 2));

        auto one = make_world_of_one();
        FganRun reference(c, *one, {1, 1, 1, false}, one_bucket());
        auto want = train(reference, SourceSpec{0, 1, global, 3}, steps);
        EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << update << " " << objective << " " << div;
        // And the parameters moved: the comparison is not between two untouched initialisations.
        FganRun fresh(c, *one, {1, 1, 1, false}, one_bucket());
        EXPECT_GT((want - fresh.parameters()).abs().max().item<double>(), 1e-2);
      }
    }
  }
}

// eval_F_var on W ranks, averaged over ranks as the trainer does, is the variance of the averaged eval_F:
// the same as one rank's on the whole global batch (up to the ranks' own generated samples, 5%).
TEST(FganMpi, EvalFVarianceAveragedOverRanksIsTheVarianceOfTheGlobalF) {
  auto comm = mpi_comm();
  Config c = fgan_config(
      {{"fgan.model", "gaussian"}, {"fgan.v_hidden", "16"}, {"fgan.v_init", "0.5"}, {"fgan.divergence", "kl"}});
  auto eval_F_var = [](Recipe& recipe, const SourceSpec& spec, uint64_t noise_key) {
    MixtureSource held_out(paper_mixture(), spec, 1, {});
    for (const auto& [key, value] : recipe.evaluate(held_out, 8, noise_key))
      if (key == "eval_F_var") return value.to(torch::kFloat64).reshape({1});
    return torch::full({1}, std::nan(""), torch::kFloat64);
  };
  FganRun parallel(c, *comm, {1, 1, 1, false}, one_bucket());
  auto got = eval_F_var(*parallel.recipe, SourceSpec{comm->rank(), comm->world_size(), 4096, 3}, /*noise_key=*/5);
  comm->all_reduce(got, ReduceOp::kAverage);
  auto one = make_world_of_one();
  FganRun reference(c, *one, {1, 1, 1, false}, one_bucket());
  const double want = eval_F_var(*reference.recipe, SourceSpec{0, 1, 4096, 3}, /*noise_key=*/99).item<double>();
  EXPECT_NEAR(got.item<double>() / want, 1.0, 0.05) << "ranks " << comm->world_size();
}

}  // namespace
}  // namespace gantry::fgan
