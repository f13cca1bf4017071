// GradSync and module state under mpiexec -n 2 and -n 4. Equivalence tests compute their reference
// on every rank locally, from the whole global batch.
#include <gtest/gtest.h>

#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/dist_test_models.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"

namespace gantry {
namespace {

using testing::as_module;

std::unique_ptr<Communicator> mpi_comm() {
  CommOptions o;
  o.timeout_s = 120;
  return make_communicator("mpi", o);
}

// Rows of this rank in a global batch of `global` rows.
torch::Tensor my_rows(const torch::Tensor& full, const Communicator& comm) {
  const int64_t per = full.size(0) / comm.world_size();
  return full.slice(0, comm.rank() * per, (comm.rank() + 1) * per);
}

// True when `t` is the same on every rank.
bool same_everywhere(Communicator& comm, const torch::Tensor& t) {
  torch::Tensor all = comm.all_gather(t.detach().contiguous());
  return all.eq(all[0].unsqueeze(0)).all().item<bool>();
}

torch::Tensor flat(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> f;
  for (const auto& t : ts) f.push_back(t.detach().reshape({-1}));
  return torch::cat(f);
}

TEST(ModuleState, BroadcastStateMakesReplicasIdentical) {
  auto comm = mpi_comm();
  torch::manual_seed(10 + comm->rank());  // different initialisation on every rank
  testing::Mlp net(5, 7, 3);
  net->bn1->running_mean.fill_(comm->rank());
  ASSERT_FALSE(same_everywhere(*comm, flat(net->parameters())));
  broadcast_state(*comm, *net);
  EXPECT_TRUE(same_everywhere(*comm, flat(net->parameters())));
  EXPECT_TRUE(net->bn1->running_mean.eq(0).all().item<bool>());
  torch::manual_seed(10);  // rank 0's initialisation
  testing::Mlp rank0(5, 7, 3);
  EXPECT_EQ(testing::max_param_diff(net->parameters(), rank0->parameters()), 0.0);
}

TEST(ModuleState, AverageBuffersAveragesRunningStatistics) {
  auto comm = mpi_comm();
  testing::Mlp net(5, 7, 3);
  net->bn1->running_mean.fill_(comm->rank());
  net->bn1->num_batches_tracked.fill_(100 + comm->rank());
  average_buffers(*comm, *net);
  const float mean = (comm->world_size() - 1) / 2.0f;
  EXPECT_TRUE(net->bn1->running_mean.eq(mean).all().item<bool>());
  EXPECT_EQ(net->bn1->num_batches_tracked.item<int64_t>(), 100);  // integers: rank 0's
}

TEST(ModuleState, DifferentShapesAreAClearErrorOnEveryRank) {
  auto comm = mpi_comm();
  const int64_t hidden = comm->rank() == 1 ? 9 : 8;  // rank 1 built a different model
  testing::Mlp net(4, hidden, 2);
  GradSync sync(*comm);
  try {
    sync.add_group("D", {as_module(net)});
    FAIL() << "no error for different models";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("dist: GradSync group 'D': ranks built different models"), std::string::npos) << what;
    EXPECT_NE(what.find("rank 1 has 'fc1.weight' Float [9, 4] where rank 0 has 'fc1.weight' Float [8, 4]"),
              std::string::npos)
        << what;
  }
  EXPECT_THROW(broadcast_state(*comm, *net), UsageError);
  EXPECT_TRUE(comm->all(true));  // every rank is still in step
}

// 2 (or 4) ranks × B/world rows == 1 rank × B rows, after 10 Adam steps. BatchNorm normalises with
// each replica's own statistics (as DDP does), so the reference runs the model once per rank's rows
// and averages those losses; without BatchNorm it is one forward over the whole batch.
void expect_data_parallel_equals_full_batch(bool batch_norm) {
  auto comm = mpi_comm();
  const int world = comm->world_size();
  torch::manual_seed(100 + comm->rank());
  testing::Mlp model(6, 16, 3, batch_norm);
  broadcast_state(*comm, *model);
  torch::manual_seed(100);  // rank 0's initialisation
  testing::Mlp reference(6, 16, 3, batch_norm);
  GradSync sync(*comm, GradSyncOptions{1024, 256});  // several buckets
  sync.add_group("M", {as_module(model)});
  ASSERT_GE(sync.bucket_bytes("M").size(), 3u);
  torch::optim::Adam opt(model->parameters(), 1e-2), ref_opt(reference->parameters(), 1e-2);
  const int64_t batch = 8 * world;
  for (int step = 0; step < 10; ++step) {
    torch::manual_seed(1000 + step);  // the same global batch on every rank
    torch::Tensor x = torch::randn({batch, 6}), y = torch::randn({batch, 3});

    opt.zero_grad();
    sync.arm("M");
    torch::mse_loss(model(my_rows(x, *comm)), my_rows(y, *comm)).backward();
    sync.finish("M");
    opt.step();

    ref_opt.zero_grad();
    torch::Tensor loss;
    if (batch_norm) {
      loss = torch::zeros({});
      for (int r = 0; r < world; ++r)
        loss = loss + torch::mse_loss(reference(x.slice(0, r * 8, r * 8 + 8)), y.slice(0, r * 8, r * 8 + 8));
      loss = loss / world;
    } else {
      loss = torch::mse_loss(reference(x), y);
    }
    loss.backward();
    ref_opt.step();
  }
  EXPECT_LT(testing::max_param_diff(model->parameters(), reference->parameters()), 1e-5);
  EXPECT_TRUE(same_everywhere(*comm, flat(model->parameters())));
}

TEST(GradSync, DataParallelEqualsFullBatchWithBatchNorm) {
  expect_data_parallel_equals_full_batch(true);
}
TEST(GradSync, DataParallelEqualsFullBatchWithoutBatchNorm) {
  expect_data_parallel_equals_full_batch(false);
}

TEST(GradSync, ConvNetGradientsAreTheGlobalBatchGradients) {
  auto comm = mpi_comm();
  torch::manual_seed(5);
  testing::ConvNet net;
  torch::manual_seed(5);
  testing::ConvNet reference;
  GradSync sync(*comm, GradSyncOptions{512, 128});
  sync.add_group("C", {as_module(net)});
  torch::manual_seed(6);
  torch::Tensor x = torch::randn({4 * comm->world_size(), 1, 8, 8}), y = torch::randn({4 * comm->world_size(), 3});
  sync.arm("C");
  torch::mse_loss(net(my_rows(x, *comm)), my_rows(y, *comm)).backward();
  sync.finish("C");
  torch::mse_loss(reference(x), y).backward();
  EXPECT_LT(testing::max_param_diff(testing::grads_of(*net), testing::grads_of(*reference)), 1e-6);
}

// A GAN's generator step flows through D, but only G's gradients may be averaged; D's stay local.
// f-GAN's single-step update reduces both players in one pass through a joint group.
TEST(GradSync, GanStepsReduceOnlyTheArmedPlayer) {
  auto comm = mpi_comm();
  torch::manual_seed(7);
  testing::Mlp g(4, 8, 6, false), d(6, 8, 1, false);
  GradSync sync(*comm, GradSyncOptions{256, 128});
  sync.add_group("G", {as_module(g)});
  sync.add_group("D", {as_module(d)});
  sync.add_group("G+D", {as_module(g), as_module(d)});
  torch::manual_seed(70 + comm->rank());
  torch::Tensor z = torch::randn({5, 4});  // different noise on every rank
  auto zero = [&] {
    for (auto& p : g->parameters()) p.mutable_grad() = torch::Tensor();
    for (auto& p : d->parameters()) p.mutable_grad() = torch::Tensor();
  };
  auto average = [&](std::vector<torch::Tensor> local) {
    torch::Tensor f = flat(local);
    comm->all_reduce(f, ReduceOp::kAverage);
    return f;
  };

  zero();
  (-d(g(z)).mean()).backward();  // local gradients, no sync
  const auto g_local = testing::grads_of(*g), d_local = testing::grads_of(*d);
  ASSERT_FALSE(same_everywhere(*comm, flat(d_local)));

  zero();
  sync.arm("G");
  (-d(g(z)).mean()).backward();
  sync.finish("G");
  EXPECT_LT((flat(testing::grads_of(*g)) - average(g_local)).abs().max().item<double>(), 1e-6);
  EXPECT_LT(testing::max_param_diff(testing::grads_of(*d), d_local), 1e-7) << "D's gradients were reduced";

  zero();
  sync.arm("G+D");
  (-d(g(z)).mean()).backward();
  sync.finish("G+D");
  EXPECT_LT((flat(testing::grads_of(*g)) - average(g_local)).abs().max().item<double>(), 1e-6);
  EXPECT_LT((flat(testing::grads_of(*d)) - average(d_local)).abs().max().item<double>(), 1e-6);
}

// Head b is used on even ranks only, "never" on none: no rank hangs, and the average counts the
// missing gradients as zeros.
TEST(GradSync, ParametersWithoutGradientDoNotHang) {
  auto comm = mpi_comm();
  torch::manual_seed(8);
  testing::Branchy net;
  GradSync sync(*comm, GradSyncOptions{128, 64});
  sync.add_group("B", {as_module(net)});
  const bool use_b = comm->rank() % 2 == 0;
  torch::manual_seed(80);
  torch::Tensor x = torch::randn({3, 6});
  net(x, true).sum().backward();
  torch::Tensor b_grad = net->b->weight.grad().clone();
  for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
  for (int step = 0; step < 3; ++step) {
    for (auto& p : net->parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    sync.arm("B");
    net(x, use_b).sum().backward();
    sync.finish("B");
  }
  const int users = (comm->world_size() + 1) / 2;
  EXPECT_TRUE(net->b->weight.grad().allclose(b_grad * users / comm->world_size(), 1e-5, 1e-6));
  EXPECT_EQ(net->never->weight.grad().abs().sum().item<float>(), 0.f);
}

TEST(GradSync, TwoMicroBatchesEqualOneBigBatch) {
  auto comm = mpi_comm();
  torch::manual_seed(9);
  testing::ConvNet net;
  torch::manual_seed(9);
  testing::ConvNet reference;
  GradSync sync(*comm);
  sync.add_group("C", {as_module(net)});
  torch::manual_seed(90);
  const int64_t batch = 8 * comm->world_size();
  torch::Tensor x = torch::randn({batch, 1, 8, 8}), y = torch::randn({batch, 3});
  torch::Tensor mx = my_rows(x, *comm), my = my_rows(y, *comm);
  // Style 2: earlier micro-batches run without arming; the last one reduces what accumulated.
  torch::mse_loss(net(mx.slice(0, 0, 4)), my.slice(0, 0, 4)).div(2).backward();
  sync.arm("C");
  torch::mse_loss(net(mx.slice(0, 4, 8)), my.slice(0, 4, 8)).div(2).backward();
  sync.finish("C");
  torch::mse_loss(reference(x), y).backward();
  EXPECT_LT(testing::max_param_diff(testing::grads_of(*net), testing::grads_of(*reference)), 1e-6);
}

// A loss passed through average_loss() gives the same averaged gradients as dividing them in the hooks
// (bit-for-bit for power-of-two worlds), also across micro-batches; mixing the two styles is an error.
TEST(GradSync, PreAveragedLossGivesTheSameGradients) {
  auto comm = mpi_comm();
  torch::manual_seed(11);
  testing::ConvNet a;
  torch::manual_seed(11);
  testing::ConvNet b;
  GradSync sync(*comm);
  sync.add_group("A", {as_module(a)});
  sync.add_group("B", {as_module(b)});
  torch::manual_seed(110);
  const int64_t batch = 8 * comm->world_size();
  torch::Tensor x = my_rows(torch::randn({batch, 1, 8, 8}), *comm), y = my_rows(torch::randn({batch, 3}), *comm);
  sync.arm("A");
  torch::mse_loss(a(x), y).backward();
  sync.finish("A");
  for (int k = 0; k < 2; ++k) {  // the same gradient in two pre-averaged micro-batches
    sync.set_accumulating(k == 0);
    sync.arm("B");
    sync.average_loss(torch::mse_loss(b(x.slice(0, 4 * k, 4 * k + 4)), y.slice(0, 4 * k, 4 * k + 4)).div(2)).backward();
    sync.finish("B");
  }
  const double diff = testing::max_param_diff(testing::grads_of(*a), testing::grads_of(*b));
  EXPECT_LT(diff, 1e-6);
  if ((comm->world_size() & (comm->world_size() - 1)) == 0) {
    // One big batch vs two micro-batches sums in another order; compare one pass each for bit-equality.
    for (auto& p : b->parameters()) p.mutable_grad().zero_();
    sync.arm("B");
    sync.average_loss(torch::mse_loss(b(x), y)).backward();
    sync.finish("B");
    EXPECT_EQ(testing::max_param_diff(testing::grads_of(*a), testing::grads_of(*b)), 0.0);
  }
  sync.set_accumulating(true);
  sync.arm("B");
  sync.average_loss(torch::mse_loss(b(x), y)).backward();
  sync.finish("B");
  sync.set_accumulating(false);
  sync.arm("B");
  torch::mse_loss(b(x), y).backward();
  EXPECT_THROW(sync.finish("B"), std::logic_error);
}

// With small buckets, the first bucket's all-reduce starts from a hook while backward still runs.
TEST(GradSync, FirstBucketIsReducedWhileBackwardRuns) {
  auto comm = mpi_comm();
  testing::Tower tower(128, 8);  // 8 × 66 KiB of parameters
  broadcast_state(*comm, *tower);
  GradSync sync(*comm, GradSyncOptions{70000, 70000});
  sync.add_group("T", {as_module(tower)});
  torch::Tensor x = torch::randn({32, 128});
  for (int step = 0; step < 2; ++step) {
    sync.arm("T");
    tower(x).sum().backward();
    sync.finish("T");
    const auto& t = sync.timeline("T");
    ASSERT_GE(t.bucket_launch.size(), 8u);
    EXPECT_LT(t.bucket_launch[0], t.backward_end);
    EXPECT_EQ(t.launched_during_backward, static_cast<int>(t.bucket_launch.size()));
    for (size_t i = 1; i < t.bucket_launch.size(); ++i) EXPECT_LE(t.bucket_launch[i - 1], t.bucket_launch[i]);
    EXPECT_LE(t.backward_end, t.finish_end);
  }
  EXPECT_TRUE(same_everywhere(*comm, flat(testing::grads_of(*tower))));
}

}  // namespace
}  // namespace gantry
