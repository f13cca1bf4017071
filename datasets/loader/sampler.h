// DistributedSampler: the global sample order and each rank's share of it.
//
// Each epoch has a seeded permutation of the whole dataset, identical on every rank, computed
// on the fly by a keyed Feistel bijection (O(1) memory, random access, no state to save). A global
// step takes the next `global_batch` positions of that order; rank r takes the contiguous slice
// [r*B/W, (r+1)*B/W). Which samples a step sees therefore depends only on (seed, epoch, position),
// not on the number of ranks, and a DataPosition resumes exactly on any world size. An epoch ends
// when fewer than `global_batch` samples remain (they are dropped, as drop_last=True does).
#pragma once

#include <cstdint>
#include <vector>

#include "train/batch_source.h"

namespace gantry::data {

// A pseudo-random permutation of [0, n) keyed by `key` (identity when shuffle is off).
class Permutation {
 public:
  Permutation(int64_t n, uint64_t key, bool shuffle = true);
  int64_t operator()(int64_t i) const;
  int64_t size() const { return n_; }

 private:
  uint64_t round(uint64_t half, int r) const;
  int64_t n_;
  uint64_t key_;
  bool shuffle_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
};

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int64_t global_batch, int rank, int world_size, uint64_t seed,
                     bool shuffle = true);

  int64_t local_batch() const { return global_batch_ / world_; }
  int64_t steps_per_epoch() const { return size_ / global_batch_; }
  // The dataset index at position i of epoch e's global order.
  int64_t global_index(int64_t epoch, int64_t i) const;
  // Normalises a position (a finished epoch rolls over) — the position of the batch next() returns.
  DataPosition normalise(DataPosition p) const;
  // This rank's dataset indices for the step starting at `p` (normalised), and the position after it.
  std::vector<int64_t> indices(const DataPosition& p, DataPosition* next) const;

 private:
  int64_t size_, global_batch_;
  int rank_, world_;
  uint64_t seed_;
  bool shuffle_;
};

// splitmix64 finaliser: a well-mixed 64-bit hash (seeds, flips).
uint64_t mix64(uint64_t x);

}  // namespace gantry::data
