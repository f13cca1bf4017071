// dist.sync_batchnorm with the DCGAN recipe under mpiexec -n 2 and -n 4: W ranks with B/W images each
// and synchronised BatchNorm take the same steps as one rank with the whole batch B (computed on every
// rank locally as the reference) to 1e-5, with running statistics identical on every rank; without the
// synchronisation they do not (the test can tell the two apart).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dcgan/dcgan_recipe.h"
#include "dist/batch_norm.h"
#include "dist/module_state.h"
#include "train/train_options.h"

namespace gantry::dcgan {
namespace {

Config dcgan_config() {
  Schema schema;
  add_common_keys(schema, {"dcgan"});
  recipe_info().add_keys(schema);
  Config c(schema);
  c.set("run.recipe", "dcgan");
  c.set("dcgan.g_width", "8");
  c.set("dcgan.d_width", "8");
  c.set("dcgan.z_dim", "16");
  return c;
}

// The recipe as the trainer builds it (seeded initialisation, rank 0's state broadcast), with every
// BatchNorm synchronised over `comm` during its steps when `sync_bn`.
struct DcganRun {
  DcganRun(const Config& config, Communicator& comm, bool sync_bn)
      : sync(comm, one_bucket()), step(sync, StepOptions{}) {
    torch::manual_seed(1234);
    recipe = recipe_info().create(
        RecipeEnv{config, {{kMainStream, DataShape{1, 32, 32, false}}}, torch::kCPU, comm, sync, step});
    for (const auto& [name, net] : recipe->networks()) broadcast_state(comm, *net);
    if (sync_bn) {
      bn_sync = std::make_shared<BatchNormSync>(comm);
      int64_t layers = 0;
      for (const auto& [name, net] : recipe->networks()) layers += attach_batchnorm_sync(*net, bn_sync, name);
      EXPECT_EQ(layers,
                3 + 2);  // 32x32: G after its projection and two of three upsamplings; D after two of three convs
    }
  }
  static GradSyncOptions one_bucket() {
    GradSyncOptions o;
    o.bucket_bytes = o.first_bucket_bytes = int64_t{256} << 20;
    return o;
  }
  void train_step(const Batch& batch) {
    BatchNormSync::Scope global_statistics(bn_sync.get());
    recipe->train_step({{kMainStream, batch}});
  }
  torch::Tensor flat(bool buffers) {
    std::vector<torch::Tensor> all;
    for (const auto& [name, net] : recipe->networks())
      for (const auto& t : buffers ? net->buffers() : net->parameters())
        if (t.is_floating_point()) all.push_back(t.detach().reshape({-1}).clone());
    return torch::cat(all);
  }
  GradSync sync;
  StepContext step;
  std::unique_ptr<Recipe> recipe;
  std::shared_ptr<BatchNormSync> bn_sync;
};

TEST(DcganSyncBatchNorm, RanksWithTheirShareMatchOneRankWithTheWholeBatch) {
  CommOptions options;
  options.timeout_s = 120;
  auto comm = make_communicator("mpi", options);
  const int W = comm->world_size(), rank = comm->rank(), steps = 3;
  const int64_t global = 16;
  const Config config = dcgan_config();
  torch::manual_seed(99);
  std::vector<torch::Tensor> images;
  for (int s = 0; s < steps; ++s) images.push_back(torch::rand({global, 1, 32, 32}) * 2 - 1);
  auto run = [&](DcganRun& r, int rank_, int world) {
    for (int s = 0; s < steps; ++s)
      r.train_step(Batch{rank_rows(images[s], rank_, world), {}, DataPosition{0, s * global}});
  };

  auto one = make_world_of_one();
  DcganRun reference(config, *one, /*sync_bn=*/false);
  run(reference, 0, 1);
  DcganRun synced(config, *comm, /*sync_bn=*/true);
  run(synced, rank, W);
  DcganRun local(config, *comm, /*sync_bn=*/false);
  run(local, rank, W);

  const torch::Tensor want = reference.flat(false), got = synced.flat(false);
  if (rank == 0)
    std::printf("W=%d: max |synced - one rank| %.3g, max |per-rank statistics - one rank| %.3g\n", W,
                (got - want).abs().max().item<double>(), (local.flat(false) - want).abs().max().item<double>());
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_LT((synced.flat(true) - reference.flat(true)).abs().max().item<double>(), 1e-5);  // running statistics
  // Every rank holds the same running statistics, bit for bit.
  const torch::Tensor buffers = synced.flat(true), gathered = comm->all_gather(buffers);
  for (int r = 0; r < W; ++r) EXPECT_TRUE(torch::equal(gathered[r], buffers)) << "rank " << r;
  // The comparison means something: training moved the weights, and per-rank statistics land elsewhere.
  DcganRun fresh(config, *one, false);
  EXPECT_GT((want - fresh.flat(false)).abs().max().item<double>(), 1e-4);
  EXPECT_GT((local.flat(false) - want).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace gantry::dcgan
