// Loader: ShardedDataset + DistributedSampler + background prefetch → Batch (BatchSource).
//
// `workers` threads each assemble whole batches (read HWC uint8 with pread, convert to float NCHW
// in [-1, 1], optional horizontal flip) into a ring of `prefetch` slots; next() hands them out in
// order. Batch k's contents depend only on (seed, position), never on thread timing, worker count or
// world size; flips are drawn per (seed, epoch, sample position). workers = 0 loads synchronously in
// next(). Memory: prefetch batches, whatever the dataset size.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "loader/sampler.h"
#include "shards/sharded_dataset.h"
#include "train/batch_source.h"

namespace gantry::data {

enum class LoaderOutput {
  kFloat,  // (B, C, H, W) float32 in [-1, 1], converted by the workers (CPU training)
  kUint8,  // (B, H, W, C) uint8 as stored: 4x fewer bytes to move; convert where it is cheapest
           // (on the GPU, with gantry::images_to_float) — the loader then only reads
};

struct LoaderOptions {
  int64_t global_batch = 64;  // all ranks together
  int rank = 0, world_size = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  bool flip = false;     // random horizontal flip, p = 0.5
  unsigned workers = 2;  // background threads (0: load in next())
  unsigned prefetch = 4; // batches in flight
  DataPosition start;    // where to begin (resume)
  LoaderOutput output = LoaderOutput::kFloat;
  // Page-locked images (CUDA runs: LibTorch needs CUDA for it), so the copy to the GPU is asynchronous.
  // Pinned batches come from LibTorch's caching host allocator, which reuses a block once the copies
  // recorded on it have completed; they are not pooled here (the pool cannot see when a copy ends).
  bool pin_memory = false;
};

class Loader : public BatchSource {
 public:
  Loader(std::shared_ptr<const ShardedDataset> dataset, LoaderOptions options);
  ~Loader() override;
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next() override;
  DataPosition position() const override;
  // Global batches in one epoch (the trainer's "whole held-out set" is this many batches).
  int64_t steps_per_epoch() const override { return sampler_.steps_per_epoch(); }
  const DistributedSampler& sampler() const { return sampler_; }

  // Fills `images` (B, C, H, W) float and `labels` for the given dataset indices (flip decided by
  // `flip_keys`, one per sample; empty: no flip). Public for tests and benchmarks.
  void assemble(const std::vector<int64_t>& indices, const std::vector<uint64_t>& flip_keys, Batch& out) const;

 private:
  struct Slot;
  Batch load(const DataPosition& p, DataPosition* next) const;
  // A tensor of this shape from the pool when one is no longer referenced outside it, else a new one
  // (pooled up to a bound): no page faults per batch, and RSS independent of allocator behaviour.
  torch::Tensor pooled(torch::IntArrayRef shape, torch::ScalarType type) const;
  void worker_loop();

  std::shared_ptr<const ShardedDataset> dataset_;
  LoaderOptions options_;
  DistributedSampler sampler_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> slots_;
  int64_t claimed_ = 0, consumed_ = 0;  // batch sequence numbers
  DataPosition claim_position_;         // position of batch `claimed_`
  DataPosition next_position_;          // position of batch `consumed_`
  bool stop_ = false;
  std::vector<std::thread> threads_;
  mutable std::mutex pool_mutex_;
  mutable std::vector<torch::Tensor> pool_;
};

}  // namespace gantry::data
