// framework/dist in one process: topology helper, backend choice, the world-of-one backend, and
// GradSync's bookkeeping (buckets, hooks, unused parameters, accumulation) over a world of one.
#include <gtest/gtest.h>

#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/dist_test_models.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"
#include "dist/mpi_runtime.h"

namespace gantry {
namespace {

using testing::as_module;

TEST(DistContext, IntraOpThreadsShareTheCores) {
  DistContext ctx;
  ctx.local_size = 4;
  EXPECT_EQ(intra_op_threads(ctx, 0, 16), 4);
  EXPECT_EQ(intra_op_threads(ctx, 0, 2), 1);   // never 0
  EXPECT_EQ(intra_op_threads(ctx, 3, 16), 3);  // train.threads wins
  ctx.local_size = 1;
  EXPECT_EQ(intra_op_threads(ctx, 0, 8), 8);
  EXPECT_GE(intra_op_threads(ctx, 0), 1);  // this machine
}

TEST(MakeCommunicator, AutoWithoutMpiIsAWorldOfOne) {
  auto comm = make_communicator("auto");
  EXPECT_EQ(comm->backend(), Backend::kWorldOfOne);
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->rank(), 0);
}

TEST(MakeCommunicator, BadChoicesAreUsageErrorsNamingTheKey) {
  auto expect_usage = [](const std::string& backend, torch::Device device, const std::string& words) {
    try {
      CommOptions o;
      o.device = device;
      make_communicator(backend, o);
      FAIL() << backend << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("dist.backend: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_usage("gloo", torch::kCPU, "unknown backend 'gloo'");
  // (mpi on a CUDA device is allowed: it stages through host memory, tests/cuda/cuda_mpi_test.cpp.)
  expect_usage("nccl", torch::kCPU, nccl_built() ? "nccl moves CUDA tensors but the device is cpu" : "no NCCL backend");
  CommOptions bad;
  bad.timeout_s = 0;
  EXPECT_THROW(make_communicator("auto", bad), UsageError);
}

TEST(WorldOfOne, CollectivesLeaveValuesAsTheyAre) {
  auto comm = make_world_of_one();
  for (auto type : {torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kDouble}) {
    for (int64_t n : {0, 1, 1001}) {
      torch::Tensor x = torch::arange(n).to(type), before = x.clone();
      comm->all_reduce(x, ReduceOp::kSum);
      EXPECT_TRUE(x.equal(before));
      comm->all_reduce_async(x, ReduceOp::kAverage)->wait();
      EXPECT_TRUE(x.equal(before));
    }
  }
  EXPECT_THROW(comm->all_reduce(torch::ones({3}, torch::kInt64), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm->all_reduce(torch::ones({4, 4}).t(), ReduceOp::kSum), std::invalid_argument);
  torch::Tensor b = torch::arange(5);
  comm->broadcast(b, 0);
  EXPECT_TRUE(b.equal(torch::arange(5)));
  EXPECT_THROW(comm->broadcast(b, 1), std::invalid_argument);
  EXPECT_EQ(comm->all_gather(torch::ones({2, 3})).sizes(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(comm->any(true));
  EXPECT_FALSE(comm->any(false));
  auto pending = comm->any_async(true);  // a world of one agrees at once
  EXPECT_TRUE(pending->ready());
  EXPECT_TRUE(pending->get());
  EXPECT_FALSE(comm->all_async(false)->get());
  EXPECT_EQ(comm->max(7), 7);
  EXPECT_EQ(comm->min(-3), -3);
  comm->barrier();
}

// Four layers, registered l0..l3; backward produces l3's gradients first.
TEST(GradSync, BucketsFollowReverseRegistrationOrder) {
  auto comm = make_world_of_one();
  testing::Tower tower(16, 4);  // each layer: 16*16*4 + 16*4 = 1088 bytes
  GradSync sync(*comm, GradSyncOptions{2200, 1100});
  sync.add_group("T", {as_module(tower)});
  const auto bytes = sync.bucket_bytes("T");
  ASSERT_EQ(bytes.size(), 3u);
  EXPECT_EQ(bytes[0], 1088);  // first bucket: 1100-byte cap → one layer
  EXPECT_EQ(bytes[1], 2176);
  EXPECT_EQ(bytes[2], 1088);
  EXPECT_EQ(sync.bucket_parameters("T", 0), (std::vector<std::string>{"l3.bias", "l3.weight"}));
  EXPECT_EQ(sync.bucket_parameters("T", 2), (std::vector<std::string>{"l0.bias", "l0.weight"}));
  EXPECT_THROW(sync.add_group("T", {as_module(tower)}), std::invalid_argument);
  EXPECT_THROW(sync.arm("nope"), std::invalid_argument);
}

TEST(GradSync, MatchesPlainTrainingAndKeepsGradientsInBuckets) {
  auto comm = make_world_of_one();
  torch::manual_seed(1);
  testing::Mlp model(5, 8, 2);
  torch::manual_seed(1);
  testing::Mlp reference(5, 8, 2);
  GradSync sync(*comm, GradSyncOptions{256, 128});
  sync.add_group("M", {as_module(model)});
  torch::optim::Adam opt(model->parameters(), 1e-2), ref_opt(reference->parameters(), 1e-2);
  std::vector<void*> homes;
  for (int step = 0; step < 5; ++step) {
    torch::Tensor x = torch::randn({8, 5}), y = torch::randn({8, 2});
    opt.zero_grad();
    sync.arm("M");
    torch::mse_loss(model(x), y).backward();
    sync.finish("M");
    opt.step();
    ref_opt.zero_grad();
    torch::mse_loss(reference(x), y).backward();
    ref_opt.step();
    std::vector<void*> now;
    for (auto& p : model->parameters()) now.push_back(p.grad().data_ptr());
    if (step == 0) homes = now;
    EXPECT_EQ(now, homes) << "gradients moved out of their buckets at step " << step;
  }
  EXPECT_LT(testing::max_param_diff(model->parameters(), reference->parameters()), 1e-6);
}

TEST(GradSync, GradientsSetToNoneAreCopiedIntoBuckets) {
  auto comm = make_world_of_one();
  testing::ConvNet net;
  GradSync sync(*comm);
  sync.add_group("C", {as_module(net)});
  for (int step = 0; step < 2; ++step) {
    for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();  // zero_grad(set_to_none)
    torch::Tensor x = torch::randn({4, 1, 8, 8});
    sync.arm("C");
    net(x).sum().backward();
    sync.finish("C");
    const auto synced = testing::grads_of(*net);
    for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
    net(x).sum().backward();
    EXPECT_LT(testing::max_param_diff(synced, testing::grads_of(*net)), 1e-6);
  }
}

TEST(GradSync, ParametersWithoutGradientAreZeroFilled) {
  auto comm = make_world_of_one();
  testing::Branchy net;
  GradSync sync(*comm, GradSyncOptions{64, 64});
  sync.add_group("B", {as_module(net)});
  sync.arm("B");
  net(torch::randn({3, 6}), /*use_b=*/false).sum().backward();
  sync.finish("B");
  ASSERT_TRUE(net->b->weight.grad().defined());
  EXPECT_EQ(net->b->weight.grad().abs().sum().item<float>(), 0.f);
  EXPECT_EQ(net->never->bias.grad().abs().sum().item<float>(), 0.f);
  EXPECT_GT(net->a->weight.grad().abs().sum().item<float>(), 0.f);
}

TEST(GradSync, SecondBackwardInOnePassIsAnError) {
  auto comm = make_world_of_one();
  testing::ConvNet net;
  GradSync sync(*comm);
  sync.add_group("C", {as_module(net)});
  torch::Tensor x = torch::randn({2, 1, 8, 8});
  sync.arm("C");
  net(x).sum().backward();
  try {
    net(x).sum().backward();
    FAIL() << "second backward accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("second gradient"), std::string::npos) << e.what();
  }
  sync.finish("C");
  EXPECT_THROW(sync.finish("C"), std::logic_error);  // not armed any more
}

TEST(GradSync, AccumulatedMicroBatchesEqualOneBigBatch) {
  auto comm = make_world_of_one();
  testing::ConvNet net;
  GradSync sync(*comm);
  sync.add_group("C", {as_module(net)});
  torch::Tensor x = torch::randn({8, 1, 8, 8}), y = torch::randn({8, 3});
  // Style 1: the group stays armed for every micro-batch.
  for (int i = 0; i < 2; ++i) {
    sync.set_accumulating(i == 0);
    sync.arm("C");
    (torch::mse_loss(net(x.slice(0, 4 * i, 4 * i + 4)), y.slice(0, 4 * i, 4 * i + 4)) / 2).backward();
    sync.finish("C");
  }
  const auto accumulated = testing::grads_of(*net);
  for (auto& p : net->parameters()) p.mutable_grad().zero_();
  torch::mse_loss(net(x), y).backward();
  EXPECT_LT(testing::max_param_diff(accumulated, testing::grads_of(*net)), 1e-6);
  EXPECT_FALSE(sync.accumulating());
  sync.arm("C");
  EXPECT_THROW(sync.set_accumulating(true), std::logic_error);  // only between passes
  sync.finish("C");
}

TEST(GradSync, OnlyTheArmedGroupLaunches) {
  auto comm = make_world_of_one();
  testing::Mlp g(3, 4, 5, false), d(5, 4, 1, false);
  GradSync sync(*comm, GradSyncOptions{64, 64});
  sync.add_group("G", {as_module(g)});
  sync.add_group("D", {as_module(d)});
  sync.arm("G");
  d(g(torch::randn({2, 3}))).sum().backward();  // flows through D
  sync.finish("G");
  EXPECT_GT(sync.timeline("G").launched_during_backward, 0);
  for (auto t : sync.timeline("D").bucket_launch) EXPECT_EQ(t, SyncTimeline::Clock::time_point{});
}

TEST(GradSync, FirstBucketLaunchesBeforeBackwardEnds) {
  auto comm = make_world_of_one();
  testing::Tower tower(64, 6);
  GradSync sync(*comm, GradSyncOptions{20000, 20000});
  sync.add_group("T", {as_module(tower)});
  sync.arm("T");
  tower(torch::randn({16, 64})).sum().backward();
  sync.finish("T");
  const auto& t = sync.timeline("T");
  ASSERT_GE(t.bucket_launch.size(), 3u);
  EXPECT_LT(t.bucket_launch[0], t.backward_end);
  EXPECT_EQ(t.launched_during_backward, static_cast<int>(t.bucket_launch.size()));
  for (size_t i = 1; i < t.bucket_launch.size(); ++i) EXPECT_LE(t.bucket_launch[i - 1], t.bucket_launch[i]);
  EXPECT_LE(t.backward_end, t.finish_start);
}

TEST(GradSync, WithoutOverlapEverythingLaunchesInFinish) {
  auto comm = make_world_of_one();
  torch::manual_seed(4);
  testing::Tower tower(32, 4), reference(32, 4);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tower->parameters().size(); ++i) reference->parameters()[i].copy_(tower->parameters()[i]);
  GradSyncOptions options{5000, 5000};
  options.overlap = false;
  GradSync sync(*comm, options);
  sync.add_group("T", {as_module(tower)});
  torch::Tensor x = torch::randn({8, 32});
  {
    torch::AutoGradMode grad_mode(true);
    sync.arm("T");
    tower(x).sum().backward();
    sync.finish("T");
    reference(x).sum().backward();
  }
  EXPECT_EQ(sync.timeline("T").launched_during_backward, 0);
  EXPECT_GE(sync.timeline("T").bucket_launch[0], sync.timeline("T").finish_start);
  EXPECT_LT(testing::max_param_diff(testing::grads_of(*tower), testing::grads_of(*reference)), 1e-6);
}

TEST(ModuleState, WorldOfOneKeepsTheModule) {
  auto comm = make_world_of_one();
  testing::Mlp net(3, 4, 2);
  const auto before = net->parameters()[0].clone();
  broadcast_state(*comm, *net);
  average_buffers(*comm, *net);
  verify_same_structure(*comm, *net, "net");
  EXPECT_TRUE(net->parameters()[0].equal(before));
}

// The only test that initialises MPI in this process: a run without mpirun is a world of one, and the
// MPI backend works there too (communication thread, monitor, half-precision operator).
TEST(MpiRuntime, WithoutMpirunIsAWorldOfOne) {
  int argc = 1;
  char name[] = "test";
  char* args[] = {name, nullptr};
  char** argv = args;
  MpiRuntime mpi(argc, argv);
  EXPECT_EQ(mpi.context().world_size, 1);
  EXPECT_EQ(mpi.context().local_size, 1);
  EXPECT_EQ(make_communicator("auto")->backend(), Backend::kWorldOfOne);
  auto comm = make_communicator("mpi");
  EXPECT_EQ(comm->backend(), Backend::kMpi);
  torch::Tensor x = torch::arange(10).to(torch::kHalf), before = x.clone();
  comm->all_reduce(x, ReduceOp::kAverage);
  EXPECT_TRUE(x.equal(before));
  EXPECT_TRUE(comm->any(true));
  auto pending = comm->any_async(false);
  EXPECT_FALSE(pending->get());
  EXPECT_TRUE(pending->ready());
}

}  // namespace
}  // namespace gantry
