// The keys every recipe shares (run.*, data.*, train.*, dist.*), declared for the schema and parsed once
// into typed values: past this point no code looks a shared key up by its name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "dist/grad_sync.h"
#include "train/recipe.h"
#include "train/schedule.h"
#include "train/step_context.h"

namespace gantry {

// Declares run.*, data.*, train.*, dist.*; `recipes` are the registered names (run.recipe's choices).
void add_common_keys(Schema& schema, const std::vector<std::string>& recipes);
// Declares data.N_path and data.N_eval_path for each stream N other than "train" (which reads data.path
// and data.eval_path); a key two recipes share is declared once.
void add_stream_keys(Schema& schema, const std::vector<StreamSpec>& streams);
// The dataset directories of a stream: {data.path, data.eval_path} for "train", else data.N_*.
std::string stream_path_key(const std::string& stream);
std::string stream_eval_path_key(const std::string& stream);

enum class OverlapMode { kAuto, kOn, kOff };

// How often things happen, in steps (0: only at the end where allowed).
struct Cadence {
  int64_t log_every = 50, sample_every = 500, eval_every = 1000, checkpoint_every = 1000;

  bool log(int64_t step, int64_t total) const { return step % log_every == 0 || step == total; }
  bool sample(int64_t step, int64_t total) const {
    return sample_every > 0 && step % sample_every == 0 && step != total;
  }
  bool eval(int64_t step, int64_t total) const { return eval_every > 0 && step % eval_every == 0 && step != total; }
  bool checkpoint(int64_t step, int64_t total) const { return step % checkpoint_every == 0 || step == total; }
};

struct TrainOptions {
  std::string recipe;        // run.recipe
  uint64_t seed = 0;         // run.seed
  int64_t steps = 1000;      // train.steps
  int64_t batch_size = 128;  // train.batch_size (global)
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t warmup_steps = 0;
  int64_t hold_steps = 0;    // train.lr_hold_steps
  int64_t eval_batches = 0;  // 0: the whole held-out set
  Cadence cadence;
  bool tensorboard = true;  // train.tensorboard: event files beside metrics.jsonl (report/tensorboard.h)
  Retention retention;
  StepOptions step;            // micro-batches, clipping, precision
  int threads = 0;             // train.threads
  bool deterministic = false;  // train.deterministic (device_setup.h: kernel_settings)
  // dist.*
  std::string backend = "auto";  // auto | mpi | nccl (make_communicator checks it)
  int64_t bucket_bytes = int64_t{25} << 20, first_bucket_bytes = int64_t{1} << 20;
  OverlapMode overlap = OverlapMode::kAuto;
  double timeout_s = 600;
  bool sync_batchnorm = false;  // dist.sync_batchnorm (dist/batch_norm.h)

  // GradSync's options for gradients on `device` (overlap auto: on for GPUs only).
  GradSyncOptions sync_options(bool on_gpu) const;
};

TrainOptions parse_train_options(const Config& config);

}  // namespace gantry
