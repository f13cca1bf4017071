// Checkpoints (ARCHITECTURE.md, "Run directory"): RUN/checkpoints/step-NNNNNNNN/ holds one torch::save
// archive per network and optimizer (loadable in Python with torch.jit.load), rng.pt (every rank's CPU
// generator state, (world, bytes) uint8) and manifest.json (step, data position, world size, config,
// per-file checksums), written last. The directory is written as step-N.tmp-PID, fsynced and renamed,
// then checkpoints/LATEST is replaced: a step-N directory exists only when complete.
//
// Training does not wait for the disk: the trainer serialises state into memory (a Snapshot, on the
// training thread, a memcpy-speed operation) and a background thread persists it; only one persist is
// in flight, so the next checkpoint waits for the previous one if the disk is slower than the cadence.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "train/batch_source.h"

namespace gantry {

inline constexpr int kCheckpointVersion = 1;

struct CheckpointMeta {
  int64_t step = 0;                             // optimizer steps done
  DataPosition data;                            // position of the next batch of the main data stream ("data_position")
  std::map<std::string, DataPosition> streams;  // every stream's ("data_positions"; includes the main one)
  int world_size = 1;
  std::string recipe;      // run.recipe
  std::string config_ini;  // the resolved configuration
  // Every data stream's image shape ("data_shapes"; since stop 15, empty for earlier checkpoints).
  std::map<std::string, DataShape> shapes;
  // What decides the bits besides the data: rank 0's threads, CPU and kernels (kernel_facts(); "machine";
  // since stop 17, empty for earlier checkpoints).
  std::string machine;
};

struct Snapshot {
  CheckpointMeta meta;
  std::vector<std::pair<std::string, std::string>> files;  // file name → bytes
};

struct Retention {
  int64_t keep_last = 3;   // newest K checkpoints
  int64_t keep_every = 0;  // plus every checkpoint whose step is a multiple of this (0: none)
};

class Checkpointer {
 public:
  Checkpointer(std::string run_dir, Retention retention);
  ~Checkpointer();  // waits for the persist in flight (errors are logged)
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Waits for the previous persist (rethrowing its error), then starts persisting `snapshot`.
  // Returns the seconds spent waiting for the previous one.
  double persist_async(Snapshot snapshot);
  // Waits for the persist in flight; rethrows its error.
  void wait();

  // Synchronous persist (used by the background thread and by tests).
  static std::string persist(const std::string& run_dir, const Snapshot& snapshot, const Retention& retention);

 private:
  void loop();

  std::string run_dir_;
  Retention retention_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<Snapshot> pending_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

struct VerifiedCheckpoint {
  std::string dir;
  CheckpointMeta meta;
  nlohmann::json manifest;
};

// A manifest's metadata (no verification; nlohmann::json exceptions on a malformed one).
CheckpointMeta manifest_meta(const nlohmann::json& manifest);
// Checks manifest.json and every file's size and checksum; CheckpointError naming the file otherwise.
VerifiedCheckpoint verify_checkpoint(const std::string& dir);
// Complete checkpoint directories of a run, newest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// --resume: "none" → nothing; "auto" → the newest checkpoint that verifies (a corrupt one is skipped
// with a warning; CheckpointError if some exist and none verifies); otherwise PATH, a checkpoint
// directory or a run directory (its newest verifying checkpoint).
std::optional<VerifiedCheckpoint> find_resume(const std::string& run_dir, const std::string& resume);

// Serialisation helpers (torch::save / torch::load archives in memory and from files).
std::string save_to_bytes(const std::shared_ptr<torch::nn::Module>& module);
std::string save_to_bytes(const torch::optim::Optimizer& optimizer);
std::string save_to_bytes(const torch::Tensor& tensor);
void load_from_file(const std::shared_ptr<torch::nn::Module>& module, const std::string& path);
void load_from_file(torch::optim::Optimizer& optimizer, const std::string& path);
torch::Tensor load_tensor(const std::string& path);

std::string checkpoint_name(int64_t step);  // "step-00000100"

}  // namespace gantry
