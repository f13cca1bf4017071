#include "loader/sampler.h"

#include <stdexcept>
#include <string>

#include "core/errors.h"

namespace gantry::data {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

namespace {
constexpr int kRounds = 6;
}

Permutation::Permutation(int64_t n, uint64_t key, bool shuffle) : n_(n), key_(mix64(key)), shuffle_(shuffle) {
  if (n <= 0) throw std::invalid_argument("Permutation of an empty range");
  // Balanced Feistel network over [0, 4^half_bits) >= n; cycle-walk values >= n back into range
  // (the domain is < 4n, so on average fewer than 4 passes).
  while ((uint64_t{1} << (2 * half_bits_)) < static_cast<uint64_t>(n)) ++half_bits_;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t Permutation::round(uint64_t half, int r) const {
  return mix64(half ^ (key_ + 0x632BE59BD9B4E019ull * static_cast<uint64_t>(r + 1))) & half_mask_;
}

int64_t Permutation::operator()(int64_t i) const {
  if (i < 0 || i >= n_) throw std::out_of_range("permutation index " + std::to_string(i));
  if (!shuffle_) return i;
  uint64_t x = static_cast<uint64_t>(i);
  do {
    uint64_t left = x >> half_bits_, right = x & half_mask_;
    for (int r = 0; r < kRounds; ++r) {
      uint64_t next = left ^ round(right, r);
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= static_cast<uint64_t>(n_));
  return static_cast<int64_t>(x);
}

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t global_batch, int rank, int world_size,
                                       uint64_t seed, bool shuffle)
    : size_(dataset_size), global_batch_(global_batch), rank_(rank), world_(world_size), seed_(seed), shuffle_(shuffle) {
  if (world_size <= 0 || rank < 0 || rank >= world_size) throw std::invalid_argument("bad rank/world size");
  if (global_batch <= 0) throw UsageError("train.batch_size: must be positive");
  if (global_batch % world_size != 0)
    throw UsageError("train.batch_size: " + std::to_string(global_batch) + " does not divide by the world size " +
                     std::to_string(world_size));
  if (dataset_size < global_batch)
    throw UsageError("train.batch_size: " + std::to_string(global_batch) + " is larger than the dataset (" +
                     std::to_string(dataset_size) + " images)");
}

int64_t DistributedSampler::global_index(int64_t epoch, int64_t i) const {
  // One permutation per epoch; constructing it is a few integer operations.
  Permutation perm(size_, seed_ ^ mix64(static_cast<uint64_t>(epoch) + 0x5851F42D4C957F2Dull), shuffle_);
  return perm(i);
}

DataPosition DistributedSampler::normalise(DataPosition p) const {
  if (p.index < 0 || p.epoch < 0) throw std::invalid_argument("negative data position");
  while (p.index + global_batch_ > size_) {  // not enough left for a full step: next epoch
    p.index = 0;
    ++p.epoch;
  }
  return p;
}

std::vector<int64_t> DistributedSampler::indices(const DataPosition& start, DataPosition* next) const {
  DataPosition p = normalise(start);
  Permutation perm(size_, seed_ ^ mix64(static_cast<uint64_t>(p.epoch) + 0x5851F42D4C957F2Dull), shuffle_);
  int64_t local = local_batch();
  std::vector<int64_t> out(static_cast<size_t>(local));
  for (int64_t k = 0; k < local; ++k) out[static_cast<size_t>(k)] = perm(p.index + rank_ * local + k);
  if (next) *next = normalise({p.epoch, p.index + global_batch_});
  return out;
}

}  // namespace gantry::data
