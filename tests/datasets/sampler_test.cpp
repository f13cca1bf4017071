// DistributedSampler and Loader positions: ranks simulated in one process.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "convert/pipeline.h"
#include "core/errors.h"
#include "loader/loader.h"
#include "loader/sampler.h"
#include "support/testing.h"

namespace gantry::testing {
namespace {

using data::DistributedSampler;
using data::Loader;
using data::LoaderOptions;
using data::Permutation;
using data::ShardedDataset;

TEST(Permutation, IsABijectionForManySizes) {
  for (int64_t n : {1, 2, 3, 4, 5, 7, 16, 17, 100, 255, 256, 257, 1000, 4099}) {
    for (uint64_t key : {0ull, 1ull, 0xDEADBEEFull}) {
      Permutation p(n, key);
      std::vector<char> hit(static_cast<size_t>(n), 0);
      for (int64_t i = 0; i < n; ++i) {
        int64_t v = p(i);
        ASSERT_GE(v, 0);
        ASSERT_LT(v, n);
        ASSERT_FALSE(hit[static_cast<size_t>(v)]) << "n " << n << " key " << key << ": repeat " << v;
        hit[static_cast<size_t>(v)] = 1;
      }
    }
  }
  Permutation identity(10, 99, false);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(identity(i), i);
  EXPECT_THROW(Permutation(10, 1)(10), std::out_of_range);
  EXPECT_THROW(Permutation(0, 1), std::invalid_argument);
}

TEST(Permutation, DifferentKeysGiveDifferentOrders) {
  Permutation a(1000, 1), b(1000, 2);
  int64_t same = 0;
  for (int64_t i = 0; i < 1000; ++i) same += a(i) == b(i);
  EXPECT_LT(same, 20);
  int64_t fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += a(i) == i;
  EXPECT_LT(fixed, 20) << "permutation is close to the identity";
}

// Each step's per-rank slices: disjoint, contiguous in rank order, union = world-of-one step.
TEST(DistributedSampler, RankSlicesPartitionTheWorldOfOneStep) {
  const int64_t n = 103, batch = 12;  // 8 full steps, 7 samples dropped per epoch
  for (bool shuffle : {true, false}) {
    DistributedSampler one(n, batch, 0, 1, 42, shuffle);
    for (int world : {1, 2, 4}) {
      SCOPED_TRACE("world " + std::to_string(world) + (shuffle ? " shuffled" : " in order"));
      std::vector<DistributedSampler> ranks;
      for (int r = 0; r < world; ++r) ranks.emplace_back(n, batch, r, world, 42, shuffle);
      EXPECT_EQ(ranks[0].local_batch(), batch / world);
      EXPECT_EQ(ranks[0].steps_per_epoch(), 8);
      DataPosition p{0, 0};
      for (int step = 0; step < 20; ++step) {  // 2.5 epochs
        DataPosition next_one;
        std::vector<int64_t> global = one.indices(p, &next_one);
        ASSERT_EQ(global.size(), static_cast<size_t>(batch));
        std::vector<int64_t> joined;
        std::set<int64_t> distinct;
        for (int r = 0; r < world; ++r) {
          DataPosition next_r;
          auto part = ranks[static_cast<size_t>(r)].indices(p, &next_r);
          EXPECT_EQ(part.size(), static_cast<size_t>(batch / world));
          EXPECT_EQ(next_r, next_one);
          for (int64_t v : part) EXPECT_TRUE(distinct.insert(v).second) << "rank slices overlap at " << v;
          joined.insert(joined.end(), part.begin(), part.end());
        }
        EXPECT_EQ(joined, global) << "step " << step;
        p = next_one;
      }
    }
  }
}

TEST(DistributedSampler, EpochIsAPermutationWithDropLast) {
  const int64_t n = 103, batch = 12;
  DistributedSampler s(n, batch, 0, 1, 7);
  // The epoch's full global order is a permutation of the dataset.
  for (int64_t e = 0; e < 3; ++e) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = s.global_index(e, i);
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> iota(static_cast<size_t>(n));
    std::iota(iota.begin(), iota.end(), 0);
    EXPECT_EQ(sorted, iota) << "epoch " << e;
  }
  // Walking steps: 8 steps of 12 distinct samples, then the next epoch starts at index 0.
  DataPosition p{0, 0};
  std::set<int64_t> seen;
  for (int step = 0; step < 8; ++step) {
    DataPosition next;
    auto idx = s.indices(p, &next);
    for (size_t k = 0; k < idx.size(); ++k) {
      EXPECT_EQ(idx[k], s.global_index(0, p.index + static_cast<int64_t>(k)));
      EXPECT_TRUE(seen.insert(idx[k]).second) << "repeat within an epoch: " << idx[k];
    }
    p = next;
  }
  EXPECT_EQ(seen.size(), 96u);
  EXPECT_EQ(p, (DataPosition{1, 0}));
  EXPECT_EQ(s.normalise({0, 96}), (DataPosition{1, 0}));
  EXPECT_EQ(s.normalise({0, 91}), (DataPosition{0, 91}));
  EXPECT_EQ(s.normalise({0, 92}), (DataPosition{1, 0}));
}

TEST(DistributedSampler, EpochsAndSeedsDiffer) {
  const int64_t n = 500;
  DistributedSampler a(n, 10, 0, 1, 1), b(n, 10, 0, 1, 2);
  auto order = [&](const DistributedSampler& s, int64_t e) {
    std::vector<int64_t> o;
    for (int64_t i = 0; i < n; ++i) o.push_back(s.global_index(e, i));
    return o;
  };
  EXPECT_NE(order(a, 0), order(a, 1));
  EXPECT_NE(order(a, 1), order(a, 2));
  EXPECT_NE(order(a, 0), order(b, 0));
  EXPECT_EQ(order(a, 3), order(DistributedSampler(n, 10, 0, 1, 1), 3)) << "not deterministic";
  // The same global order whatever the batch or world size.
  DistributedSampler c(n, 20, 1, 4, 1);
  EXPECT_EQ(order(a, 2), order(c, 2));
  // Shuffle off: dataset order every epoch.
  DistributedSampler plain(n, 10, 0, 1, 1, false);
  std::vector<int64_t> iota(static_cast<size_t>(n));
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(order(plain, 0), iota);
  EXPECT_EQ(order(plain, 5), iota);
}

TEST(DistributedSampler, RejectsBadConfigurations) {
  EXPECT_THROW(DistributedSampler(100, 10, 0, 3, 0), UsageError);   // batch does not divide
  EXPECT_THROW(DistributedSampler(5, 10, 0, 1, 0), UsageError);     // batch larger than the dataset
  EXPECT_THROW(DistributedSampler(100, 0, 0, 1, 0), UsageError);    // empty batch
  EXPECT_THROW(DistributedSampler(100, 10, 2, 2, 0), std::invalid_argument);
}

// ---- Loader positions ---------------------------------------------------------------------------

class LoaderResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("resume");
    auto src = data::make_synthetic_source(37, 4, 3, 9);
    data::ConvertOptions o;
    o.out = *dir_ / "ds";
    o.shard_size = 10;
    o.progress = false;
    o.workers = 1;
    data::run_conversion(*src, o);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::shared_ptr<ShardedDataset> dataset() { return ShardedDataset::open(*dir_ / "ds"); }
  static LoaderOptions opts(unsigned workers, int rank = 0, int world = 1) {
    LoaderOptions o;
    o.global_batch = 8;  // 4 steps per epoch, 5 samples dropped
    o.seed = 1234;
    o.flip = true;
    o.workers = workers;
    o.prefetch = 3;
    o.rank = rank;
    o.world_size = world;
    return o;
  }
  static ScratchDir* dir_;
};
ScratchDir* LoaderResume::dir_ = nullptr;

void expect_same_batch(const Batch& a, const Batch& b, const std::string& what) {
  EXPECT_EQ(a.position, b.position) << what;
  ASSERT_EQ(a.images.sizes(), b.images.sizes()) << what;
  EXPECT_TRUE(torch::equal(a.images, b.images)) << what;
  EXPECT_TRUE(torch::equal(a.labels, b.labels)) << what;
}

TEST_F(LoaderResume, PositionCountsGlobalSamples) {
  Loader loader(dataset(), opts(2));
  // Through the BatchSource interface, as the trainer asks it how many batches a whole evaluation is.
  EXPECT_EQ(static_cast<const BatchSource&>(loader).steps_per_epoch(), 4);
  EXPECT_EQ(Loader(dataset(), opts(1, 1, 2)).steps_per_epoch(), 4);  // global batches, on any rank
  EXPECT_EQ(loader.position(), (DataPosition{0, 0}));
  for (int step = 1; step <= 9; ++step) {
    Batch b = loader.next();
    EXPECT_EQ(b.position, (DataPosition{(step - 1) / 4, ((step - 1) % 4) * 8}));
    EXPECT_EQ(loader.position(), (DataPosition{step / 4, (step % 4) * 8})) << "after step " << step;
  }
}

TEST_F(LoaderResume, ResumeMidEpochYieldsTheSameBatches) {
  auto ds = dataset();
  for (unsigned workers : {0u, 2u}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    Loader a(ds, opts(workers));
    for (int i = 0; i < 3; ++i) a.next();  // mid-epoch: 3 of 4 steps done
    DataPosition saved = a.position();
    EXPECT_EQ(saved, (DataPosition{0, 24}));
    std::vector<Batch> reference;
    for (int i = 0; i < 6; ++i) reference.push_back(a.next());  // crosses into epoch 1 and 2
    for (unsigned resume_workers : {0u, 3u}) {
      LoaderOptions o = opts(resume_workers);
      o.start = saved;
      Loader b(ds, o);
      EXPECT_EQ(b.position(), saved);
      for (int i = 0; i < 6; ++i)
        expect_same_batch(reference[static_cast<size_t>(i)], b.next(), "batch " + std::to_string(i) + " after resume");
    }
  }
}

TEST_F(LoaderResume, ResumeOnAnotherWorldSizeKeepsTheGlobalOrder) {
  auto ds = dataset();
  Loader one(ds, opts(0));
  for (int i = 0; i < 2; ++i) one.next();
  DataPosition saved = one.position();
  std::vector<Batch> reference;
  for (int i = 0; i < 5; ++i) reference.push_back(one.next());
  for (int world : {2, 4}) {
    SCOPED_TRACE("world " + std::to_string(world));
    std::vector<std::unique_ptr<Loader>> ranks;
    for (int r = 0; r < world; ++r) {
      LoaderOptions o = opts(r % 2 == 0 ? 0u : 2u, r, world);
      o.start = saved;
      ranks.push_back(std::make_unique<Loader>(ds, o));
    }
    for (int i = 0; i < 5; ++i) {
      std::vector<torch::Tensor> images, labels;
      for (auto& l : ranks) {
        Batch b = l->next();
        EXPECT_EQ(b.position, reference[static_cast<size_t>(i)].position);
        EXPECT_EQ(b.images.size(0), 8 / world);
        images.push_back(b.images);
        labels.push_back(b.labels);
      }
      EXPECT_TRUE(torch::equal(torch::cat(images), reference[static_cast<size_t>(i)].images)) << "step " << i;
      EXPECT_TRUE(torch::equal(torch::cat(labels), reference[static_cast<size_t>(i)].labels)) << "step " << i;
    }
    for (auto& l : ranks) EXPECT_EQ(l->position(), one.position());
  }
}

// Batches handed out stay intact while the caller holds them (or only a view of them), however
// many further batches are loaded; dropped ones may be recycled.
TEST_F(LoaderResume, HeldBatchesAreNeverOverwritten) {
  auto ds = dataset();
  for (unsigned workers : {0u, 2u}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    Loader loader(ds, opts(workers));
    std::vector<Batch> held;
    std::vector<torch::Tensor> copies, views, view_copies;
    for (int i = 0; i < 12; ++i) {
      Batch b = loader.next();
      if (i % 3 == 0) {
        copies.push_back(b.images.clone());
        held.push_back(b);
      } else if (i % 3 == 1) {
        views.push_back(b.images[1]);
        view_copies.push_back(b.images[1].clone());
      }
    }
    for (size_t k = 0; k < held.size(); ++k)
      EXPECT_TRUE(torch::equal(held[k].images, copies[k])) << "held batch " << k << " was overwritten";
    for (size_t k = 0; k < views.size(); ++k)
      EXPECT_TRUE(torch::equal(views[k], view_copies[k])) << "view " << k << " was overwritten";
    // And every batch equals a fresh loader's, whose batches are cloned at once.
    Loader fresh(ds, opts(0));
    for (int i = 0; i < 12; ++i) {
      torch::Tensor expected = fresh.next().images.clone();
      if (i % 3 == 0) {
        EXPECT_TRUE(torch::equal(held[static_cast<size_t>(i / 3)].images, expected)) << "batch " << i;
      }
    }
  }
}

TEST_F(LoaderResume, WorkerCountDoesNotChangeBatches) {
  auto ds = dataset();
  Loader a(ds, opts(0)), b(ds, opts(1)), c(ds, opts(4));
  for (int i = 0; i < 10; ++i) {
    Batch x = a.next();
    const std::string step = std::to_string(i);  // no "literal" + string&&: GCC 12 false positives in C++20
    expect_same_batch(x, b.next(), "workers 1, step " + step);
    expect_same_batch(x, c.next(), "workers 4, step " + step);
  }
}

}  // namespace
}  // namespace gantry::testing
