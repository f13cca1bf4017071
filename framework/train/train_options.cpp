#include "train/train_options.h"

#include "core/errors.h"

namespace gantry {

void add_common_keys(Schema& s, const std::vector<std::string>& recipes) {
  s.add_string("run.recipe", recipes.empty() ? "" : recipes.front(), "registered recipe", recipes)
      .add_int("run.seed", 0, "one seed; every rank derives its own streams from it", 0)
      .add_string("data.path", "data/fashion-mnist/train", "training dataset directory")
      .add_string("data.eval_path", "", "held-out dataset directory (empty: no evaluation)")
      .add_int("data.workers", 2, "loader threads per rank", 0, 64)
      .add_int("data.prefetch", 4, "batches in flight per rank", 1, 1024)
      .add_bool("data.flip", false, "random horizontal flip")
      .add_int("train.steps", 1000, "total optimizer steps of the run (a resumed run continues to it)", 1)
      .add_int("train.batch_size", 128, "global batch (each rank takes batch_size / world size)", 1)
      .add_real("train.lr", 1e-3, "base learning rate", 0)
      .add_string("train.lr_schedule", "constant", "learning-rate schedule", {"constant", "linear", "cosine"})
      .add_int("train.warmup_steps", 0, "linear warm-up steps", 0)
      .add_int("train.lr_hold_steps", 0,
               "linear/cosine: steps at the full rate after the warm-up before the decay starts", 0)
      .add_int("train.log_every", 50, "progress line and metrics.jsonl every N steps", 1)
      .add_int("train.sample_every", 500, "sample grid every N steps (0: only at the end)", 0)
      .add_int("train.eval_every", 1000, "held-out evaluation every N steps (0: only at the end)", 0)
      .add_bool("train.tensorboard", true,
                "TensorBoard event files in the run directory: metrics, sample grids, configuration")
      .add_int("train.eval_batches", 0, "held-out batches per evaluation (0: the whole set)", 0)
      .add_string("eval.features", "",
                  "a classifier run or checkpoint: evaluations add FID / KID of samples in its features")
      .add_string("eval.inception", "",
                  "a TorchScript Inception-v3, (N, 3, 299, 299) in [-1, 1] -> (N, 2048): FID / KID in its features")
      .add_int("eval.samples", 10000, "generated images for FID / KID / Parzen", 2)
      .add_int("eval.kid_subsets", 100, "KID: random subsets ...", 1)
      .add_int("eval.kid_subset_size", 1000, "... of this many rows of each set", 2)
      .add_bool("eval.parzen", false, "evaluations add the Parzen-window log-likelihood of the held-out set")
      .add_int("eval.parzen_validation", 1000, "training images that choose the Parzen bandwidth", 1)
      .add_int("train.checkpoint_every", 1000, "checkpoint every N steps (and at the end)", 1)
      .add_int("train.keep_last", 3, "checkpoints kept: the newest K ...", 1)
      .add_int("train.keep_every", 0, "... plus every checkpoint at a multiple of N steps (0: none)", 0)
      .add_int("train.micro_batches", 1, "split each rank's batch into N micro-batches (gradient accumulation)", 1)
      .add_real("train.clip_grad_norm", 0, "clip gradients to this global L2 norm after the reduction (0: off)", 0)
      .add_bool("train.deterministic", false,
                "deterministic kernels only, cuDNN autotuning off (a resume repeats a run bit for bit; slower); "
                "false: cuDNN autotuning on for CUDA runs")
      .add_string("train.precision", "fp32",
                  "autocast around the forward passes: fp32 (off), bf16, fp16 (with dynamic loss scaling per "
                  "update group); weights, gradients and optimizer state stay fp32",
                  {"fp32", "bf16", "fp16"})
      .add_int("train.threads", 0, "LibTorch intra-op threads per rank (0: cores / ranks on the node)", 0)
      .add_string("dist.backend", "auto", "gradient reduction backend", {"auto", "mpi", "nccl"})
      .add_real("dist.bucket_mb", 25, "gradient bucket size, MiB", 0.001)
      .add_real("dist.first_bucket_mb", 1, "first (earliest-launched) bucket size, MiB", 0.001)
      .add_string("dist.overlap", "auto",
                  "start bucket all-reduces during backward: on, off, auto (on for GPUs; off on CPUs, whose "
                  "cores are all busy computing)",
                  {"auto", "on", "off"})
      .add_real("dist.timeout_s", 600, "longest wait in one collective before the job aborts naming the missing ranks",
                1)
      .add_bool("dist.sync_batchnorm", false,
                "BatchNorm statistics over the global batch in training steps (one small all-reduce per layer "
                "forward and backward); false: each rank's own batch");
}

std::string stream_path_key(const std::string& stream) {
  return stream == kMainStream ? "data.path" : "data." + stream + "_path";
}
std::string stream_eval_path_key(const std::string& stream) {
  return stream == kMainStream ? "data.eval_path" : "data." + stream + "_eval_path";
}

void add_stream_keys(Schema& s, const std::vector<StreamSpec>& streams) {
  for (const auto& st : streams) {
    if (st.name == kMainStream || s.find(stream_path_key(st.name))) continue;
    s.add_string(stream_path_key(st.name), "", "dataset directory of data stream '" + st.name + "'")
        .add_string(stream_eval_path_key(st.name), "", "held-out dataset of stream '" + st.name + "' (empty: none)");
  }
}

GradSyncOptions TrainOptions::sync_options(bool on_gpu) const {
  GradSyncOptions o;
  o.bucket_bytes = bucket_bytes;
  o.first_bucket_bytes = first_bucket_bytes;
  o.overlap = overlap == OverlapMode::kOn || (overlap == OverlapMode::kAuto && on_gpu);
  return o;
}

TrainOptions parse_train_options(const Config& c) {
  TrainOptions o;
  o.recipe = c.str("run.recipe");
  o.seed = static_cast<uint64_t>(c.int64("run.seed"));
  o.steps = c.int64("train.steps");
  o.batch_size = c.int64("train.batch_size");
  o.schedule = parse_schedule(c.str("train.lr_schedule"));
  o.warmup_steps = c.int64("train.warmup_steps");
  o.hold_steps = c.int64("train.lr_hold_steps");
  if (o.hold_steps > 0 && o.schedule == LrSchedule::kConstant)
    throw UsageError(
        "train.lr_hold_steps: holds the rate before a decay; train.lr_schedule is constant (use linear "
        "or cosine)");
  o.eval_batches = c.int64("train.eval_batches");
  o.cadence = {c.int64("train.log_every"), c.int64("train.sample_every"), c.int64("train.eval_every"),
               c.int64("train.checkpoint_every")};
  o.tensorboard = c.flag("train.tensorboard");
  o.retention = {c.int64("train.keep_last"), c.int64("train.keep_every")};
  o.step = {c.int64("train.micro_batches"), c.real("train.clip_grad_norm"), parse_precision(c.str("train.precision"))};
  o.threads = static_cast<int>(c.int64("train.threads"));
  o.deterministic = c.flag("train.deterministic");
  o.backend = c.str("dist.backend");
  o.bucket_bytes = static_cast<int64_t>(c.real("dist.bucket_mb") * (1 << 20));
  o.first_bucket_bytes = static_cast<int64_t>(c.real("dist.first_bucket_mb") * (1 << 20));
  const std::string& overlap = c.str("dist.overlap");
  o.overlap = overlap == "on" ? OverlapMode::kOn : overlap == "off" ? OverlapMode::kOff : OverlapMode::kAuto;
  o.timeout_s = c.real("dist.timeout_s");
  o.sync_batchnorm = c.flag("dist.sync_batchnorm");
  return o;
}

}  // namespace gantry
