// The MPI backend under mpiexec -n 2 and -n 4: every collective, dtype, op and awkward size.
#include <gtest/gtest.h>

#include <thread>

#include "dist/communicator.h"
#include "dist/mpi_runtime.h"

namespace gantry {
namespace {

std::unique_ptr<Communicator> mpi_comm() {
  CommOptions o;
  o.timeout_s = 120;
  return make_communicator("mpi", o);
}

TEST(MpiTopology, ContextMatchesTheWorld) {
  const DistContext ctx = discover_context();
  auto comm = mpi_comm();
  EXPECT_EQ(comm->rank(), ctx.rank);
  EXPECT_EQ(comm->world_size(), ctx.world_size);
  EXPECT_GE(ctx.world_size, 2);
  EXPECT_EQ(ctx.local_size, ctx.world_size);  // one node
  EXPECT_EQ(ctx.local_rank, ctx.rank);
  EXPECT_EQ(intra_op_threads(ctx, 0, 8), std::max(1, 8 / ctx.world_size));
  EXPECT_EQ(make_communicator("auto")->backend(), Backend::kMpi);
}

// Rank r holds (r + 1) * (i % 7): small integers, exact in every dtype, so results compare exactly.
TEST(MpiCollectives, AllReduceEveryDtypeOpAndSize) {
  auto comm = mpi_comm();
  const int world = comm->world_size();
  const int64_t rank_sum = static_cast<int64_t>(world) * (world + 1) / 2;
  const int64_t big = (int64_t{25} << 20) / 4 + 3;  // more than a default 25 MiB bucket of float32
  for (auto type : {torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kDouble}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1001}, big}) {
      if (n == big && type == torch::kDouble) continue;
      const torch::Tensor pattern = torch::arange(n, torch::kInt64).remainder(7);
      for (auto op : {ReduceOp::kSum, ReduceOp::kAverage}) {
        torch::Tensor x = (pattern * (comm->rank() + 1)).to(type);
        comm->all_reduce(x, op);
        torch::Tensor expected = (pattern * rank_sum).to(torch::kDouble);
        if (op == ReduceOp::kAverage) expected = expected / world;
        EXPECT_TRUE(x.to(torch::kDouble).allclose(expected, 0, 0))
            << c10::toString(type) << " n=" << n << " op=" << static_cast<int>(op);
      }
    }
  }
}

TEST(MpiCollectives, AsyncReductionsOverlapAndCompleteInAnyWaitOrder) {
  auto comm = mpi_comm();
  std::vector<torch::Tensor> xs;
  std::vector<std::shared_ptr<Work>> works;
  for (int i = 0; i < 4; ++i) {
    xs.push_back(torch::full({4097 * (i + 1)}, static_cast<float>(comm->rank() + i)));
    works.push_back(comm->all_reduce_async(xs.back(), ReduceOp::kAverage));
  }
  for (int i = 3; i >= 0; --i) {
    works[static_cast<size_t>(i)]->wait();
    works[static_cast<size_t>(i)]->wait();  // twice is fine
    const float expected = (comm->world_size() - 1) / 2.0f + i;
    EXPECT_TRUE(xs[static_cast<size_t>(i)].eq(expected).all().item<bool>()) << i;
  }
}

TEST(MpiCollectives, BroadcastFromEveryRoot) {
  auto comm = mpi_comm();
  for (int root = 0; root < comm->world_size(); ++root) {
    torch::Tensor f = torch::full({1001}, static_cast<float>(comm->rank()));
    comm->broadcast(f, root);
    EXPECT_TRUE(f.eq(static_cast<float>(root)).all().item<bool>());
    torch::Tensor i = torch::arange(5, torch::kInt64) + 10 * comm->rank();
    comm->broadcast(i, root);
    EXPECT_TRUE(i.equal(torch::arange(5, torch::kInt64) + 10 * root));
  }
  torch::Tensor empty = torch::empty({0});
  comm->broadcast(empty, 0);
  EXPECT_THROW(comm->broadcast(empty, comm->world_size()), std::invalid_argument);
}

TEST(MpiCollectives, AllGatherStacksInRankOrder) {
  auto comm = mpi_comm();
  torch::Tensor mine = torch::full({2, 3}, comm->rank(), torch::kInt64);
  torch::Tensor all = comm->all_gather(mine);
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{comm->world_size(), 2, 3}));
  for (int r = 0; r < comm->world_size(); ++r) EXPECT_TRUE(all[r].eq(r).all().item<bool>());
  EXPECT_EQ(comm->all_gather(torch::empty({0})).sizes(), (std::vector<int64_t>{comm->world_size(), 0}));
  torch::Tensor strided = torch::arange(6).view({2, 3}).t();  // not contiguous: gathered as values
  EXPECT_TRUE(comm->all_gather(strided)[0].equal(strided));
}

TEST(MpiCollectives, ControlPlaneAgreements) {
  auto comm = mpi_comm();
  const int last = comm->world_size() - 1;
  EXPECT_TRUE(comm->any(comm->rank() == last));  // "does any rank want to stop?"
  EXPECT_FALSE(comm->any(false));
  EXPECT_FALSE(comm->all(comm->rank() == 0));
  EXPECT_TRUE(comm->all(true));
  EXPECT_EQ(comm->max(comm->rank() * int64_t{1000000000000}), last * int64_t{1000000000000});
  EXPECT_EQ(comm->min(comm->rank() - 5), -5);
  comm->barrier();
}

// The trainer's stop check: an agreement started at the end of step k and completed at the end of
// step k+1, between asynchronous all-reduces. Every rank gets the same answers, and the stop that
// rank W-1 asks for at step 5 is seen by every rank at step 6.
TEST(MpiAgreements, AsyncAgreementsGiveTheSameAnswerOnEveryRank) {
  auto comm = mpi_comm();
  const int world = comm->world_size(), rank = comm->rank();
  std::vector<int64_t> answers;
  auto pending = comm->any_async(false);
  for (int step = 0; step < 12; ++step) {
    torch::Tensor g = torch::full({4097}, static_cast<float>(rank));
    auto work = comm->all_reduce_async(g, ReduceOp::kSum);
    work->wait();
    EXPECT_TRUE(g.eq(static_cast<float>(world * (world - 1) / 2)).all().item<bool>());
    const bool stop = pending->get();
    EXPECT_EQ(pending->get(), stop);  // get() may be called again
    answers.push_back(stop);
    EXPECT_EQ(stop, step == 6) << "step " << step;
    pending = comm->any_async(step == 5 && rank == world - 1);
  }
  EXPECT_FALSE(pending->get());
  // The answers, gathered: the same on every rank.
  torch::Tensor all = comm->all_gather(torch::tensor(answers));
  for (int r = 1; r < world; ++r) EXPECT_TRUE(all[r].equal(all[0])) << r;
}

TEST(MpiAgreements, MaxMinAndAllCompleteInAnyOrder) {
  auto comm = mpi_comm();
  const int world = comm->world_size(), rank = comm->rank();
  auto mx = comm->agree_async(rank * int64_t{10}, Communicator::AgreeOp::kMax);
  auto mn = comm->agree_async(rank - 3, Communicator::AgreeOp::kMin);
  auto all = comm->all_async(rank != 0);
  EXPECT_FALSE(all->get());  // waited for before the two issued earlier
  EXPECT_EQ(mn->value(), -3);
  while (!mx->ready()) std::this_thread::yield();  // ready() progresses it
  EXPECT_EQ(mx->value(), (world - 1) * int64_t{10});
  EXPECT_TRUE(comm->all_async(true)->get());
  EXPECT_TRUE(comm->any(rank == 0));
}

TEST(MpiCollectives, WrongBuffersAreRefusedBeforeAnyCommunication) {
  auto comm = mpi_comm();
  EXPECT_THROW(comm->all_reduce(torch::ones({3}, torch::kInt32), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm->all_reduce(torch::ones({3, 3}).t(), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm->all_reduce(torch::Tensor(), ReduceOp::kSum), std::invalid_argument);
  EXPECT_TRUE(comm->all(true));  // still in step
}

}  // namespace
}  // namespace gantry
