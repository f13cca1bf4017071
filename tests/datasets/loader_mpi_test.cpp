// Under mpiexec -n 2 / 4: each rank's Loader slice, gathered to rank 0 in rank order, equals a
// world-of-one loader's batch with the same seed, step after step, across epochs.
#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>

#include "convert/pipeline.h"
#include "loader/loader.h"
#include "shards/sharded_dataset.h"
#include "support/testing.h"

namespace gantry::testing {
namespace {

using data::Loader;
using data::LoaderOptions;
using data::ShardedDataset;

int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world() {
  int w = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &w);
  return w;
}

// Rank 0 writes a small dataset in a scratch directory and broadcasts its path.
class SharedDataset {
 public:
  SharedDataset(int64_t count, int res, int channels, int64_t shard_size) {
    std::string path;
    int ok = 1;
    if (rank() == 0) {
      scratch_ = std::make_unique<ScratchDir>("mpi-loader");
      path = *scratch_ / "ds";
      try {
        auto src = data::make_synthetic_source(count, res, channels, 5);
        data::ConvertOptions o;
        o.out = path;
        o.shard_size = shard_size;
        o.progress = false;
        o.workers = 1;
        data::run_conversion(*src, o);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "conversion failed: " << e.what();
        ok = 0;
      }
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int len = static_cast<int>(path.size());
    MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
    path.resize(static_cast<size_t>(len));
    MPI_Bcast(path.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);  // the directory is complete before anyone opens it
    ok_ = ok == 1;
    path_ = path;
  }
  ~SharedDataset() {
    MPI_Barrier(MPI_COMM_WORLD);  // everyone is done reading before rank 0 removes it
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  std::unique_ptr<ScratchDir> scratch_;
  std::string path_;
  bool ok_ = false;
};

void check_gathered_batches(bool shuffle, bool flip, unsigned workers) {
  const int r = rank(), w = world();
  SharedDataset shared(53, 5, 3, 16);  // 4 shards; global batch 8 → 6 steps per epoch, 5 dropped
  ASSERT_TRUE(shared.ok());
  auto ds = ShardedDataset::open(shared.path());
  LoaderOptions o;
  o.global_batch = 8;
  o.rank = r;
  o.world_size = w;
  o.seed = 2024;
  o.shuffle = shuffle;
  o.flip = flip;
  o.workers = workers;
  Loader loader(ds, o);
  std::unique_ptr<Loader> reference;
  if (r == 0) {
    LoaderOptions one = o;
    one.rank = 0;
    one.world_size = 1;
    one.workers = 0;
    reference = std::make_unique<Loader>(ds, one);
  }
  const int64_t local = 8 / w, per_image = 3 * 5 * 5;
  int mismatches = 0;
  for (int step = 0; step < 15; ++step) {  // 2.5 epochs
    Batch b = loader.next();
    // Every rank collects; no early exit, so a failure cannot deadlock the collectives.
    torch::Tensor images = b.images.contiguous();
    torch::Tensor labels = b.labels.contiguous();
    const bool shape_ok = images.numel() == local * per_image && labels.numel() == local;
    if (!shape_ok) {
      ADD_FAILURE() << "rank " << r << " step " << step << ": batch shape " << images.sizes();
      images = torch::zeros({local, 3, 5, 5});
      labels = torch::zeros({local}, torch::kInt64);
    }
    std::vector<float> all_images(r == 0 ? static_cast<size_t>(8 * per_image) : 0);
    std::vector<int64_t> all_labels(r == 0 ? 8 : 0);
    MPI_Gather(images.data_ptr<float>(), static_cast<int>(local * per_image), MPI_FLOAT, all_images.data(),
               static_cast<int>(local * per_image), MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Gather(labels.data_ptr<int64_t>(), static_cast<int>(local), MPI_INT64_T, all_labels.data(), static_cast<int>(local),
               MPI_INT64_T, 0, MPI_COMM_WORLD);
    int64_t pos[2] = {b.position.epoch, b.position.index};
    std::vector<int64_t> all_pos(r == 0 ? static_cast<size_t>(2 * w) : 0);
    MPI_Gather(pos, 2, MPI_INT64_T, all_pos.data(), 2, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (r == 0) {
      Batch ref = reference->next();
      auto gathered = torch::from_blob(all_images.data(), {8, 3, 5, 5}, torch::kFloat32);
      auto gathered_labels = torch::from_blob(all_labels.data(), {8}, torch::kInt64);
      if (!torch::equal(gathered, ref.images) || !torch::equal(gathered_labels, ref.labels)) ++mismatches;
      EXPECT_TRUE(torch::equal(gathered, ref.images)) << "world " << w << " step " << step;
      EXPECT_TRUE(torch::equal(gathered_labels, ref.labels)) << "world " << w << " step " << step;
      for (int k = 0; k < w; ++k) {
        EXPECT_EQ(all_pos[static_cast<size_t>(2 * k)], ref.position.epoch) << "rank " << k << " step " << step;
        EXPECT_EQ(all_pos[static_cast<size_t>(2 * k + 1)], ref.position.index) << "rank " << k << " step " << step;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(loader.position(), (DataPosition{2, 24}));
}

TEST(LoaderMpi, GatheredSlicesEqualWorldOfOneShuffled) { check_gathered_batches(true, false, 2); }
TEST(LoaderMpi, GatheredSlicesEqualWorldOfOneWithFlips) { check_gathered_batches(true, true, 1); }
TEST(LoaderMpi, GatheredSlicesEqualWorldOfOneInOrder) { check_gathered_batches(false, false, 0); }

// Resuming on this world size from a position a world-of-one run saved.
TEST(LoaderMpi, ResumeFromAWorldOfOnePosition) {
  const int r = rank(), w = world();
  SharedDataset shared(40, 4, 1, 40);
  ASSERT_TRUE(shared.ok());
  auto ds = ShardedDataset::open(shared.path());
  LoaderOptions o;
  o.global_batch = 8;
  o.seed = 99;
  o.flip = true;
  o.workers = 0;
  DataPosition saved;
  std::vector<Batch> reference;
  if (r == 0) {
    Loader one(ds, o);
    for (int i = 0; i < 3; ++i) one.next();
    saved = one.position();
    for (int i = 0; i < 4; ++i) reference.push_back(one.next());
  }
  int64_t pos[2] = {saved.epoch, saved.index};
  MPI_Bcast(pos, 2, MPI_INT64_T, 0, MPI_COMM_WORLD);
  o.rank = r;
  o.world_size = w;
  o.workers = 2;
  o.start = DataPosition{pos[0], pos[1]};
  Loader loader(ds, o);
  const int64_t local = 8 / w, per_image = 16;
  for (int step = 0; step < 4; ++step) {
    Batch b = loader.next();
    torch::Tensor images = b.images.contiguous();
    std::vector<float> all(r == 0 ? static_cast<size_t>(8 * per_image) : 0);
    MPI_Gather(images.data_ptr<float>(), static_cast<int>(local * per_image), MPI_FLOAT, all.data(),
               static_cast<int>(local * per_image), MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (r == 0) {
      auto gathered = torch::from_blob(all.data(), {8, 1, 4, 4}, torch::kFloat32);
      EXPECT_TRUE(torch::equal(gathered, reference[static_cast<size_t>(step)].images)) << "step " << step;
    }
  }
}

}  // namespace
}  // namespace gantry::testing
