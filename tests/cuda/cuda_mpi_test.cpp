// The MPI backend on CUDA tensors (mpiexec -n 2; the ranks may share one GPU): collectives stage through
// host memory, and GradSync's averages over 2 ranks equal the gradients of one rank on the whole batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda/cuda_skip.h"
#include "dist/communicator.h"
#include "dist/dist_test_models.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"
#include "dist/mpi_runtime.h"

namespace gantry {
namespace {

std::unique_ptr<Communicator> mpi_on_gpu(torch::Device* device) {
  const DistContext ctx = discover_context();
  *device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.local_rank % torch::cuda::device_count()));
  CommOptions o;
  o.device = *device;
  o.timeout_s = 120;
  return make_communicator("mpi", o);
}

TEST(MpiOnCuda, CollectivesOnDeviceTensors) {
  torch::Device gpu = torch::kCPU;
  auto comm = mpi_on_gpu(&gpu);
  ASSERT_EQ(comm->backend(), Backend::kMpi);
  const int rank = comm->rank(), world = comm->world_size();
  torch::Tensor x = torch::full({1000}, static_cast<float>(rank + 1), gpu);
  comm->all_reduce(x, ReduceOp::kSum);
  EXPECT_TRUE(x.is_cuda());
  EXPECT_TRUE(torch::equal(x.cpu(), torch::full({1000}, world * (world + 1) / 2.0f)));
  torch::Tensor avg = torch::full({7}, static_cast<double>(rank), torch::TensorOptions(gpu).dtype(torch::kDouble));
  comm->all_reduce_async(avg, ReduceOp::kAverage)->wait();
  EXPECT_TRUE(torch::allclose(avg.cpu(), torch::full({7}, (world - 1) / 2.0, torch::kDouble)));
  torch::Tensor b = torch::full({5}, rank == 1 ? 42 : -1, torch::TensorOptions(gpu).dtype(torch::kInt64));
  comm->broadcast(b, 1 % world);
  EXPECT_TRUE(torch::equal(b.cpu(), torch::full({5}, world > 1 ? 42 : -1, torch::kInt64)));
  torch::Tensor g = comm->all_gather(torch::full({2}, static_cast<float>(rank), gpu));
  EXPECT_TRUE(g.is_cuda());
  for (int r = 0; r < world; ++r) EXPECT_TRUE(torch::equal(g[r].cpu(), torch::full({2}, static_cast<float>(r))));
}

// 2 ranks × B/2 rows on the GPU == 1 rank × B rows: the gradients after GradSync's pass, and the
// parameters after 5 Adam steps.
TEST(MpiOnCuda, GradSyncAveragesEqualTheWholeBatch) {
  torch::Device gpu = torch::kCPU;
  auto comm = mpi_on_gpu(&gpu);
  const int world = comm->world_size();
  torch::manual_seed(100 + comm->rank());
  testing::Mlp model(6, 16, 3, /*batch_norm=*/false);
  model->to(gpu);
  broadcast_state(*comm, *model);
  torch::manual_seed(100);  // rank 0's initialisation
  testing::Mlp reference(6, 16, 3, false);
  reference->to(gpu);
  GradSync sync(*comm, GradSyncOptions{1024, 256, /*overlap=*/true});
  sync.add_group("M", {testing::as_module(model)});
  ASSERT_GE(sync.bucket_bytes("M").size(), 2u);
  torch::optim::Adam opt(model->parameters(), 1e-2), ref_opt(reference->parameters(), 1e-2);
  const int64_t per = 8, batch = per * world;
  for (int step = 0; step < 5; ++step) {
    torch::manual_seed(1000 + step);  // the same global batch on every rank
    torch::Tensor x = torch::randn({batch, 6}).to(gpu), y = torch::randn({batch, 3}).to(gpu);
    opt.zero_grad();
    sync.arm("M");
    const int64_t first = comm->rank() * per;
    torch::mse_loss(model(x.slice(0, first, first + per)), y.slice(0, first, first + per)).backward();
    sync.finish("M");
    ref_opt.zero_grad();
    torch::mse_loss(reference(x), y).backward();
    EXPECT_LT(testing::max_param_diff(testing::grads_of(*model), testing::grads_of(*reference)), 1e-6) << step;
    opt.step();
    ref_opt.step();
  }
  EXPECT_LT(testing::max_param_diff(model->parameters(), reference->parameters()), 1e-5);
  for (auto& p : model->parameters()) EXPECT_TRUE(p.is_cuda());
}

}  // namespace
}  // namespace gantry
