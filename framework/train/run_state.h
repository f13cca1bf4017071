// The parts of a run's state the trainer saves and restores, each a function a test can call with the
// world-of-one communicator: the resume decision, the snapshot that becomes a checkpoint, the restore.
// What a checkpoint holds: every network (BatchNorm statistics averaged over ranks) and optimizer, the
// recipe's shared and per-rank state, every rank's CPU (and device) RNG state and own BatchNorm
// statistics, every data stream's position (ARCHITECTURE.md, "Run directory"), and with
// train.precision = fp16 each update group's loss scaler (scaler-<group>.pt).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "checkpoint/checkpoint.h"
#include "dist/communicator.h"
#include "train/recipe.h"
#include "train/step_context.h"

namespace gantry {

// RNG streams of a run, each derived from run.seed with keyed_seed(seed, stream, ...).
enum class RngStream : uint64_t {
  kTrain = 0x7A11,       // the default CPU generator while training (per rank; and per step after a resume on
                         // another world size)
  kSample = 0x5A3B,      // sample grids
  kEval = 0xE7A1,        // held-out evaluation (per sample, see Recipe::evaluate)
  kVisuals = 0x715A,     // reconstructions and other pictures
  kDataStream = 0xDA7A,  // the permutation of a data stream other than the main one (per stream name)
  kScore = 0x5C0E,       // gantry eval's sample scores (per chunk of samples, so any world size draws the same)
};
uint64_t rng_seed(uint64_t run_seed, RngStream stream, uint64_t a = 0, uint64_t b = 0);
// The seed of a data stream's permutation and flips: run.seed for the main stream (as before streams
// existed), a keyed seed per name for the others.
uint64_t stream_seed(uint64_t run_seed, const std::string& stream);

struct ResumePoint {
  std::string dir;  // empty: a fresh run
  CheckpointMeta meta;
  std::vector<std::string> files;  // as listed in its manifest
};

// --resume auto | none | PATH, decided by rank 0 (which verifies the checkpoint) and broadcast, so every
// rank loads the same directory or raises rank 0's CheckpointError. Collective. `recipe`: the recipe the
// checkpoint must have been written by (empty: any, e.g. gantry eval, which takes the checkpoint's).
ResumePoint decide_resume(Communicator& comm, const std::string& run_dir, const std::string& resume,
                          const std::string& recipe);

// This rank's part of a checkpoint at `meta.step` (collective: every rank calls it; the returned
// snapshot's files are complete on rank 0 only).
// `step` (optional): the step context whose loss scalers are saved.
Snapshot take_snapshot(Communicator& comm, Recipe& recipe, CheckpointMeta meta, const torch::Device& device,
                       const StepContext* step = nullptr);

// Loads a checkpoint into the recipe: networks and optimizers (every rank reads them), RNG streams, own
// BatchNorm statistics and per-rank recipe state when the world size is the one that wrote it, otherwise
// fresh RNG streams keyed by (seed, rank, step). Then broadcasts rank 0's networks. Collective.
// `step` (optional): an fp16 step context gets its loss scalers back (a checkpoint without them, written
// by an fp32 or bf16 run, leaves fresh scalers; a non-fp16 run ignores them).
void restore_checkpoint(Communicator& comm, Recipe& recipe, const ResumePoint& from, const torch::Device& device,
                        uint64_t seed, StepContext* step = nullptr);

// Every network's state broadcast from rank 0 (a fresh run's start). Collective.
void broadcast_networks(Communicator& comm, Recipe& recipe);

// Runs fn with every network's buffers averaged across ranks, then restores this rank's own (training
// keeps local BatchNorm statistics; checkpoints and evaluation see the average). Collective.
void with_averaged_buffers(Communicator& comm, Recipe& recipe, const std::function<void()>& fn);

}  // namespace gantry
