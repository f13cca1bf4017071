// gantry::BatchNorm against LibTorch's BatchNorm1d/2d: the same parameters, buffers and results with
// local statistics; the synchronised path (world of one) agrees with them; LibTorch's own layers are
// refused by dist.sync_batchnorm rather than silently left local.
#include "dist/batch_norm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/errors.h"

namespace gantry {
namespace {

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Runs `steps` training forward/backward passes of `ours` and `theirs` on the same inputs (offset and
// scaled so the mean is far from 0, where a one-pass variance would lose digits) and compares outputs,
// input gradients, parameter gradients and running statistics; then one eval-mode pass.
template <typename Theirs>
void expect_same(BatchNorm& ours, Theirs& theirs, std::vector<int64_t> shape, double tol) {
  torch::manual_seed(7);
  {
    torch::NoGradGuard no_grad;
    theirs->weight.normal_(1.0, 0.3);
    theirs->bias.normal_(0.0, 0.3);
    ours->weight.copy_(theirs->weight);
    ours->bias.copy_(theirs->bias);
  }
  for (int step = 0; step < 3; ++step) {
    auto x = (torch::randn(shape) * 3 + 5).requires_grad_(true);
    auto x2 = x.detach().clone().requires_grad_(true);
    auto up = torch::randn(shape);
    auto y_ours = ours->forward(x), y_theirs = theirs->forward(x2);
    EXPECT_LT(max_diff(y_ours, y_theirs), tol);
    (y_ours * up).sum().backward();
    (y_theirs * up).sum().backward();
    EXPECT_LT(max_diff(x.grad(), x2.grad()), tol);
    EXPECT_LT(max_diff(ours->weight.grad(), theirs->weight.grad()), tol * 10);
    EXPECT_LT(max_diff(ours->bias.grad(), theirs->bias.grad()), tol * 10);
    EXPECT_LT(max_diff(ours->running_mean, theirs->running_mean), tol);
    EXPECT_LT(max_diff(ours->running_var, theirs->running_var), tol * 10);
    EXPECT_EQ(ours->num_batches_tracked.template item<int64_t>(), step + 1);
    EXPECT_EQ(theirs->num_batches_tracked.template item<int64_t>(), step + 1);
    ours->zero_grad();
    theirs->zero_grad();
  }
  ours->eval();
  theirs->eval();
  auto x = torch::randn(shape) * 3 + 5;
  EXPECT_LT(max_diff(ours->forward(x), theirs->forward(x)), tol);
}

TEST(BatchNorm, LocalStatisticsAreLibTorchs) {
  BatchNorm ours2d(6);
  torch::nn::BatchNorm2d theirs2d(6);
  expect_same(ours2d, theirs2d, {8, 6, 5, 5}, 1e-6);
  BatchNorm ours1d(6);
  torch::nn::BatchNorm1d theirs1d(6);
  expect_same(ours1d, theirs1d, {16, 6}, 1e-6);
}

TEST(BatchNorm, SynchronisedPathAtWorldOfOneAgrees) {
  auto comm = make_world_of_one();
  auto sync = std::make_shared<BatchNormSync>(*comm);
  BatchNormSync::Scope on(sync.get());
  ASSERT_EQ(sync->active(), comm.get());
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{8, 6, 5, 5}, std::vector<int64_t>{16, 6}}) {
    BatchNorm ours(6);
    EXPECT_EQ(attach_batchnorm_sync(*ours, sync, "net"), 1);
    if (shape.size() == 4) {
      torch::nn::BatchNorm2d theirs(6);
      expect_same(ours, theirs, shape, 2e-5);
    } else {
      torch::nn::BatchNorm1d theirs(6);
      expect_same(ours, theirs, shape, 2e-5);
    }
  }
}

TEST(BatchNorm, ScopeEnablesOnlyWhileItLives) {
  auto comm = make_world_of_one();
  auto sync = std::make_shared<BatchNormSync>(*comm);
  EXPECT_EQ(sync->active(), nullptr);
  {
    BatchNormSync::Scope on(sync.get());
    EXPECT_EQ(sync->active(), comm.get());
  }
  EXPECT_EQ(sync->active(), nullptr);
  BatchNormSync::Scope none(nullptr);  // no synchronisation configured: a no-op
}

TEST(BatchNorm, StateHasLibTorchsNamesSoCheckpointsAreInterchangeable) {
  BatchNorm ours(4);
  torch::nn::BatchNorm2d theirs(4);
  auto keys = [](const auto& dict) {
    std::vector<std::string> k;
    for (const auto& item : dict) k.push_back(item.key());
    return k;
  };
  EXPECT_EQ(keys(ours->named_parameters()), keys(theirs->named_parameters()));
  EXPECT_EQ(keys(ours->named_buffers()), keys(theirs->named_buffers()));
  for (const auto& b : theirs->named_buffers())
    EXPECT_EQ(ours->named_buffers()[b.key()].scalar_type(), b.value().scalar_type()) << b.key();
}

TEST(BatchNorm, WrongInputIsAClearError) {
  BatchNorm bn(4);
  EXPECT_THROW(bn->forward(torch::randn({8, 3, 2, 2})), std::invalid_argument);
  EXPECT_THROW(bn->forward(torch::randn({8})), std::invalid_argument);
  auto comm = make_world_of_one();
  auto sync = std::make_shared<BatchNormSync>(*comm);
  attach_batchnorm_sync(*bn, sync, "net");
  BatchNormSync::Scope on(sync.get());
  EXPECT_THROW(bn->forward(torch::randn({1, 4})), std::invalid_argument);  // one value per channel
}

TEST(BatchNorm, SyncRefusesLibTorchsOwnLayers) {
  auto comm = make_world_of_one();
  auto sync = std::make_shared<BatchNormSync>(*comm);
  torch::nn::Sequential mixed(torch::nn::Linear(3, 4), BatchNorm(4), torch::nn::ReLU());
  EXPECT_EQ(attach_batchnorm_sync(*mixed, sync, "generator"), 1);
  torch::nn::Sequential plain(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4));
  try {
    attach_batchnorm_sync(*plain, sync, "generator");
    FAIL() << "LibTorch's BatchNorm1d was accepted";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("dist.sync_batchnorm"), std::string::npos) << what;
    EXPECT_NE(what.find("'generator'"), std::string::npos) << what;
    EXPECT_NE(what.find("BatchNorm1d"), std::string::npos) << what;
  }
  torch::nn::Sequential none(torch::nn::Linear(3, 4));
  EXPECT_EQ(attach_batchnorm_sync(*none, sync, "critic"), 0);
}

}  // namespace
}  // namespace gantry
