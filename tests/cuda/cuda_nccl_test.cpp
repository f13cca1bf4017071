// CUDA tests in one process (mpiexec -n 1; they need a GPU, else exit 77): the NCCL communicator at
// world size one, GradSync through it, a whole update with no host synchronisation, the pinned uint8
// loader and its conversion on the device.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda/cuda_skip.h"
#include "dist/communicator.h"
#include "dist/dist_test_models.h"
#include "dist/grad_sync.h"
#include "loader/loader.h"
#include "support/testing.h"
#include "train/batch_source.h"
#include "train/step_context.h"

namespace gantry {
namespace {

const torch::Device kGpu(torch::kCUDA, 0);

std::unique_ptr<Communicator> nccl() {
  if (!nccl_built()) throw std::runtime_error("a CUDA device, but this build has no NCCL backend");
  CommOptions o;
  o.device = kGpu;
  o.timeout_s = 120;
  return make_communicator("nccl", o);
}

TEST(NcclWorldOfOne, AllReduceBroadcastAllGather) {
  auto comm = nccl();
  ASSERT_EQ(comm->backend(), Backend::kNccl);
  ASSERT_EQ(comm->world_size(), 1);
  for (auto type : {torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kDouble}) {
    torch::Tensor x = torch::arange(1001, torch::TensorOptions(kGpu).dtype(type)), before = x.clone();
    comm->all_reduce(x, ReduceOp::kSum);
    EXPECT_TRUE(torch::equal(x, before)) << type;
    comm->all_reduce_async(x, ReduceOp::kAverage)->wait();
    EXPECT_TRUE(torch::equal(x, before)) << type;
  }
  torch::Tensor empty = torch::zeros({0}, kGpu);
  comm->all_reduce(empty, ReduceOp::kSum);
  torch::Tensor bytes = torch::arange(256, torch::TensorOptions(kGpu).dtype(torch::kInt32));
  comm->broadcast(bytes, 0);
  EXPECT_TRUE(torch::equal(bytes.cpu(), torch::arange(256, torch::kInt32)));
  torch::Tensor gathered = comm->all_gather(torch::ones({2, 3}, kGpu));
  EXPECT_EQ(gathered.sizes(), (c10::IntArrayRef{1, 2, 3}));
  EXPECT_TRUE(gathered.is_cuda());
  // CPU tensors go through the MPI control plane.
  torch::Tensor host = torch::full({4}, 2.0);
  comm->all_reduce(host, ReduceOp::kAverage);
  EXPECT_TRUE(torch::equal(host, torch::full({4}, 2.0)));
  EXPECT_THROW(comm->all_reduce(torch::zeros({3}, torch::TensorOptions(kGpu).dtype(torch::kInt64)), ReduceOp::kSum),
               std::invalid_argument);
}

// A GradSync pass through NCCL leaves the gradients a plain backward gives (world of one), on the GPU,
// with several buckets launched from the backward hooks.
TEST(NcclWorldOfOne, GradSyncPassKeepsTheLocalGradients) {
  auto comm = nccl();
  torch::manual_seed(5);
  testing::ConvNet net;
  torch::manual_seed(5);
  testing::ConvNet reference;
  net->to(kGpu);
  reference->to(kGpu);
  GradSync sync(*comm, GradSyncOptions{512, 128, /*overlap=*/true});
  sync.add_group("C", {testing::as_module(net)});
  ASSERT_GE(sync.bucket_bytes("C").size(), 2u);
  torch::manual_seed(6);
  torch::Tensor x = torch::randn({8, 1, 8, 8}).to(kGpu), y = torch::randn({8, 3}).to(kGpu);
  for (int pass = 0; pass < 3; ++pass) {
    net->zero_grad();
    reference->zero_grad();
    sync.arm("C");
    torch::mse_loss(net(x), y).backward();
    sync.finish("C");
    torch::mse_loss(reference(x), y).backward();
    EXPECT_GT(sync.timeline("C").launched_during_backward, 0);
    EXPECT_EQ(testing::max_param_diff(testing::grads_of(*net), testing::grads_of(*reference)), 0.0) << pass;
  }
}

// A whole update as a recipe runs it on a GPU — uint8 batch from pinned memory converted on the device,
// two micro-batches, GradSync over NCCL, clipping, Adam — with host synchronisation made an error.
TEST(NcclWorldOfOne, AnUpdateNeverSynchronisesTheHost) {
  auto comm = nccl();
  torch::manual_seed(1);
  testing::ConvNet net;
  net->to(kGpu);
  GradSync sync(*comm, GradSyncOptions{512, 128, true});
  sync.add_group("C", {testing::as_module(net)});
  StepContext step(sync, StepOptions{2, 0.5});
  torch::optim::Adam opt(net->parameters(), 1e-3);
  torch::Tensor images = torch::randint(0, 256, {8, 8, 8, 1}, torch::kUInt8).pin_memory();
  torch::Tensor target = torch::randn({8, 3}).to(kGpu);
  torch::cuda::synchronize();
  {
    testing::NoHostSync guard;
    for (int i = 0; i < 3; ++i) {
      torch::Tensor x = images_to_float(images, kGpu);
      Losses out = step.update("C", {&opt}, [&](int64_t k) {
        return Losses{{"loss", torch::mse_loss(net(step.micro(x, k)), step.micro(target, k))}};
      });
      EXPECT_TRUE(out[0].second.is_cuda());
    }
  }
  torch::cuda::synchronize();
  for (auto& p : net->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  // The guard does catch a synchronisation: .item() inside it raises.
  testing::NoHostSync guard;
  EXPECT_ANY_THROW(torch::ones({1}, kGpu).sum().item<float>());
}

// On the GPU, uint8_to_float gives exactly what it gives on the CPU (which the dataset tests check
// against the loader's float output), for every byte value.
TEST(DevicePath, ConversionOnTheGpuEqualsTheCpu) {
  torch::Tensor bytes = torch::arange(256, torch::kInt32).to(torch::kUInt8).reshape({2, 8, 16, 1});
  bytes = torch::cat({bytes, bytes.flip(2), bytes.flip(1)}, 3);  // (2, 8, 16, 3)
  torch::Tensor cpu = uint8_to_float(bytes);
  torch::Tensor gpu = images_to_float(bytes.pin_memory(), kGpu);
  ASSERT_TRUE(gpu.is_cuda());
  EXPECT_TRUE(torch::equal(gpu.cpu(), cpu));
}

// A loader with pin_memory hands out page-locked uint8 batches (and labels).
TEST(DevicePath, LoaderPinsItsBatches) {
  testing::ScratchDir dir("cuda_pinned");
  auto r = testing::run_gantry("data convert --quiet --format synthetic --count 16 --resolution 8 --channels 3 --out " +
                               dir / "ds");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  data::LoaderOptions o;
  o.global_batch = 4;
  o.workers = 2;
  o.output = data::LoaderOutput::kUint8;
  o.pin_memory = true;
  data::Loader loader(data::ShardedDataset::open(dir / "ds"), o);
  for (int i = 0; i < 6; ++i) {
    Batch b = loader.next();
    EXPECT_TRUE(b.images.is_pinned());
    EXPECT_TRUE(b.labels.is_pinned());
    EXPECT_EQ(b.images.scalar_type(), torch::kUInt8);
  }
}

}  // namespace
}  // namespace gantry
